package xtables

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
)

// The sizes of the xtables structures the compat expressions carry (x86-64 and every other Linux ABI:
// no pointers, no padding past 8-byte alignment).
const (
	commentInfoLen = 256 // struct xt_comment_info: char comment[XT_MAX_COMMENT_LEN]
	masqInfoLen4   = 24  // struct nf_nat_ipv4_multi_range_compat, rangesize 1
	masqInfoLen6   = 40  // struct nf_nat_range, as ip6tables' MASQUERADE rev 0 takes it
	nftReg1        = 1   // NFT_REG_1, the 16-byte register iptables-nft loads into
)

// errNotEncodable: a rule uses something nftRule does not encode as iptables-nft would.
var errNotEncodable = errors.New("not in the subset written without iptables")

// nftRule encodes r, a rule of the masquerade layout (`[!] -s|-d PREFIX`, `-m comment --comment C`,
// `-j ACCEPT|MASQUERADE|CHAIN`), as iptables-nft 1.8 writes it: the address matches as payload loads
// (only the prefix's bytes when it ends on a byte, else the whole address through a mask) compared
// to the address, `-m comment` as the compat match "comment", a counter, then the verdict or the
// compat target "MASQUERADE". So iptables-save prints it as iptables-restore would have written it.
// Anything else is errNotEncodable.
func nftRule(f Family, r Rule) ([]expr.Any, error) {
	var src, dst []expr.Any
	var matches []expr.Any
	var verdict expr.Any
	for i := 0; i < len(r); i++ {
		neg := r[i] == "!"
		if neg {
			i++
		}
		if i+1 >= len(r) {
			return nil, fmt.Errorf("%q: %w", r.String(), errNotEncodable)
		}
		opt, val := r[i], r[i+1]
		i++
		switch {
		case (opt == "-s" || opt == "-d") && (opt == "-s" && src == nil || opt == "-d" && dst == nil):
			m, err := addrMatch(f, opt == "-d", val, neg)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", r.String(), err)
			}
			if opt == "-s" {
				src = m
			} else {
				dst = m
			}
		case !neg && opt == "-m" && val == "comment" && i+2 < len(r) && r[i+1] == "--comment" &&
			len(r[i+2]) < commentInfoLen && !strings.ContainsRune(r[i+2], 0) && matches == nil:
			info := make([]byte, commentInfoLen)
			copy(info, r[i+2])
			matches = append(matches, &expr.Match{Name: "comment", Info: info})
			i += 2
		case !neg && opt == "-j" && verdict == nil && i == len(r)-1:
			verdict = target(f, val)
		default:
			return nil, fmt.Errorf("%q: %w", r.String(), errNotEncodable)
		}
	}
	if verdict == nil {
		return nil, fmt.Errorf("%q: no target: %w", r.String(), errNotEncodable)
	}
	out := append(append(src, dst...), matches...)
	return append(out, &expr.Counter{}, verdict), nil
}

// addrMatch is iptables-nft's `[!] -s|-d prefix`: a load of the address field, masked unless the
// prefix ends on a byte (then only its bytes are loaded), compared with the prefix's address.
func addrMatch(f Family, dst bool, val string, neg bool) ([]expr.Any, error) {
	p, err := netip.ParsePrefix(val)
	if err != nil || p.Addr().Is4() != (f == IPv4) || p.Bits() == 0 || p.Masked() != p {
		return nil, fmt.Errorf("address %q: %w", val, errNotEncodable)
	}
	// The source address's offset in the IPv4 or IPv6 header; the destination follows it.
	offset, size := uint32(12), uint32(4)
	if f == IPv6 {
		offset, size = 8, 16
	}
	if dst {
		offset += size
	}
	addr := p.Addr().AsSlice()
	op := expr.CmpOpEq
	if neg {
		op = expr.CmpOpNeq
	}
	if p.Bits()%8 == 0 {
		n := uint32(p.Bits() / 8)
		return []expr.Any{
			&expr.Payload{DestRegister: nftReg1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
			&expr.Cmp{Op: op, Register: nftReg1, Data: addr[:n]},
		}, nil
	}
	n := uint32(len(addr))
	mask := make([]byte, n)
	for i := range mask {
		switch bits := p.Bits() - 8*i; {
		case bits >= 8:
			mask[i] = 0xff
		case bits > 0:
			mask[i] = byte(0xff << (8 - bits))
		}
	}
	return []expr.Any{
		&expr.Payload{DestRegister: nftReg1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
		&expr.Bitwise{SourceRegister: nftReg1, DestRegister: nftReg1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: op, Register: nftReg1, Data: addr},
	}, nil
}

// target is `-j val`: ACCEPT as a verdict, MASQUERADE as the compat target, any other name a jump.
func target(f Family, val string) expr.Any {
	switch val {
	case "ACCEPT":
		return &expr.Verdict{Kind: expr.VerdictAccept}
	case "MASQUERADE":
		if f == IPv4 {
			info := make([]byte, masqInfoLen4)
			info[0] = 1 // rangesize, in host byte order as the kernel reads it
			return &expr.Target{Name: "MASQUERADE", Info: info}
		}
		return &expr.Target{Name: "MASQUERADE", Info: make([]byte, masqInfoLen6)}
	}
	return &expr.Verdict{Kind: expr.VerdictJump, Chain: val}
}

// nftBuild tells whether the tools x runs for f are the nf_tables build of iptables: the variant
// says so, or the system's iptables-restore resolves to xtables-nft-multi. A wrapper script, or
// anything else, is not known to be.
func (x Exec) nftBuild(f Family) bool {
	switch x.cfg.Variant {
	case VariantNFT:
		return true
	case VariantLegacy:
		return false
	}
	_, restore := x.cfg.Binaries(f)
	path, err := exec.LookPath(restore)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(path)
	return err == nil && filepath.Base(real) == "xtables-nft-multi"
}

// AddChain creates chain in f's table with rules, and appends jumps to from, in one nf_tables
// transaction, when the nf_tables build of iptables is the one x runs and alone may hold the table,
// and every rule is in the subset nftRule writes as iptables-nft does: what iptables-nft-restore does
// with `-N chain`, `-A chain ...` and `-A from ...`, without its process and without its cache of the
// table, which it fills before any change by listing every chain (with 1,000 pods' masquerade chains
// in the nat table, 1.7 ms → 4 ms per restore). The kernel refuses the transaction whole when chain
// exists, or the table or from does not (iptables-restore creates those): AddChain returns false
// then, having changed nothing, and the caller restores with the tools.
func (x Exec) AddChain(f Family, table, from, chain string, rules, jumps []Rule, before func()) bool {
	if !x.nftBuild(f) || legacyHas(f, table) {
		return false
	}
	t := nftnl.Table{Family: nftFamily(f), Name: table}
	var b nftnl.Batch
	b.Add(t.CreateChain(chain))
	for _, set := range []struct {
		chain string
		rules []Rule
	}{{chain, rules}, {from, jumps}} {
		for _, r := range set.rules {
			exprs, err := nftRule(f, r)
			if err != nil {
				return false
			}
			b.Add(t.AddRule(nftnl.Rule{Chain: set.chain, Exprs: exprs}))
		}
	}
	msgs, err := b.Msgs()
	if err != nil {
		return false
	}
	c, err := nftnl.Dial()
	if err != nil {
		return false
	}
	defer c.Close()
	if before != nil {
		before()
	}
	return c.Transact(msgs) == nil
}
