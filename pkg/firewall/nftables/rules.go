package nftables

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/firewall"
)

// The reference plugins' names (pkg/ip/ipmasq_nftables_linux.go). Rules are found by their comment, which
// starts with the hashes below, so each side deletes the other's.
const (
	TableName       = "cni_plugins_masquerade"
	MasqChain       = "masq_checks"
	PostroutingName = "postrouting"
	// commentMax is knftables.CommentLengthMax: the reference cuts its comments there, and its GC compares
	// whole comments, so ours must be cut at the same byte.
	commentMax = 128
	hashLen    = 16
)

// prioritySrcNAT is the postrouting chain's priority, as nft names it: srcnat.
const prioritySrcNAT = 100

// Byte offsets and lengths in the IPv4 and IPv6 headers.
const (
	ipv4SrcOffset = 12
	ipv4DstOffset = 16
	ipv6SrcOffset = 8
	ipv6DstOffset = 24
)

var (
	multicastV4 = netip.MustParsePrefix("224.0.0.0/4")
	multicastV6 = netip.MustParsePrefix("ff00::/8")
)

func hash16(s string) string {
	sum := sha512.Sum512([]byte(s))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// networkHash starts the comment of every rule of network.
func networkHash(network string) string { return hash16(network) }

// instanceHash starts the comment of every rule of one attachment.
func instanceHash(k firewall.Key) string {
	return networkHash(k.Network) + "-" + hash16(k.IfName+":"+k.ContainerID)
}

// Comment is the comment on k's rules: the hashes that find them, then who owns them in words, for
// `nft list ruleset` readers. It equals the reference's, byte for byte.
func Comment(k firewall.Key) string {
	c := fmt.Sprintf("%s, net: %s, if: %s, id: %s", instanceHash(k),
		strings.ReplaceAll(k.Network, `"`, ""), strings.ReplaceAll(k.IfName, `"`, ""),
		strings.ReplaceAll(k.ContainerID, `"`, ""))
	if len(c) > commentMax {
		c = c[:commentMax]
	}
	return c
}

// reg is the register the rules load into, as nft uses it.
const reg = 1

// matchProto is the dependency nft puts before an ip or ip6 match in an inet table.
func matchProto(is4 bool) []expr.Any {
	proto := byte(unix.NFPROTO_IPV6)
	if is4 {
		proto = unix.NFPROTO_IPV4
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{proto}},
	}
}

// matchAddr compares the address at offset with p, the way nft compiles `ip daddr [!=] p`: a prefix on a
// byte boundary loads only its bytes, any other is masked.
func matchAddr(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	p = p.Masked()
	full := uint32(p.Addr().BitLen() / 8)
	bits := p.Bits()
	val := p.Addr().AsSlice()
	if bits > 0 && bits%8 == 0 {
		n := uint32(bits / 8)
		return []expr.Any{
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
			&expr.Cmp{Op: op, Register: reg, Data: val[:n]},
		}
	}
	mask := make([]byte, full)
	for i := 0; i < bits; i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: full},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: full, Mask: mask, Xor: make([]byte, full)},
		&expr.Cmp{Op: op, Register: reg, Data: val},
	}
}

// masqExprs is `ip saddr A ip daddr != SUBNET masquerade` (ip6 for IPv6) for pod address a: the rule the
// reference adds to masq_checks for each address.
func masqExprs(a netip.Prefix) []expr.Any {
	is4 := a.Addr().Is4()
	src, dst := uint32(ipv6SrcOffset), uint32(ipv6DstOffset)
	if is4 {
		src, dst = ipv4SrcOffset, ipv4DstOffset
	}
	host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
	e := matchProto(is4)
	e = append(e, matchAddr(src, host, expr.CmpOpEq)...)
	e = append(e, matchAddr(dst, a, expr.CmpOpNeq)...)
	return append(e, &expr.Masq{})
}

// postroutingExprs is the content of the postrouting chain: multicast leaves untouched, anything else
// goes on to masq_checks.
func postroutingExprs() [][]expr.Any {
	v4 := append(matchProto(true), matchAddr(ipv4DstOffset, multicastV4, expr.CmpOpEq)...)
	v6 := append(matchProto(false), matchAddr(ipv6DstOffset, multicastV6, expr.CmpOpEq)...)
	return [][]expr.Any{
		append(v4, &expr.Verdict{Kind: expr.VerdictReturn}),
		append(v6, &expr.Verdict{Kind: expr.VerdictReturn}),
		{&expr.Verdict{Kind: expr.VerdictGoto, Chain: MasqChain}},
	}
}
