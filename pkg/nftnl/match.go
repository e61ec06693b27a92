package nftnl

import (
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl/expr"
)

// Address matches, compiled as nft compiles `meta nfproto ipv4`, `ip saddr 10.0.0.0/8` and
// `ip6 daddr != fd00::/8` in an inet table, so `nft list ruleset` prints a rule built from them as
// that text and a rule read back compares equal (as expr.Describe text) with the one built. Every
// layout matches addresses the same way; this is the one place that knows how.

// matchReg is the register the matches load into, as nft uses it.
const matchReg = 1

// Byte offsets of the addresses in the IPv4 and IPv6 headers.
const (
	ipv4SrcOffset = 12
	ipv4DstOffset = 16
	ipv6SrcOffset = 8
	ipv6DstOffset = 24
)

// MatchFamily is `meta nfproto ipv4` (ipv6 when !is4): the dependency nft puts before an ip or ip6
// match in an inet table.
func MatchFamily(is4 bool) []expr.Any {
	proto := byte(unix.NFPROTO_IPV6)
	if is4 {
		proto = unix.NFPROTO_IPV4
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: matchReg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: matchReg, Data: []byte{proto}},
	}
}

// MatchSaddr is `ip saddr [!=] p` (ip6 for an IPv6 p; op is expr.CmpOpEq or expr.CmpOpNeq), without
// the family dependency (MatchFamily). A host prefix matches one address.
func MatchSaddr(p netip.Prefix, op expr.CmpOp) []expr.Any {
	off := uint32(ipv6SrcOffset)
	if p.Addr().Is4() {
		off = ipv4SrcOffset
	}
	return matchPrefix(off, p, op)
}

// MatchDaddr is `ip daddr [!=] p`, as MatchSaddr.
func MatchDaddr(p netip.Prefix, op expr.CmpOp) []expr.Any {
	off := uint32(ipv6DstOffset)
	if p.Addr().Is4() {
		off = ipv4DstOffset
	}
	return matchPrefix(off, p, op)
}

// matchPrefix compares the address at offset with p: a prefix on a byte boundary loads only its bytes,
// any other (and /0) is loaded whole and masked, as nft does.
func matchPrefix(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	p = p.Masked()
	full := uint32(p.Addr().BitLen() / 8)
	bits := p.Bits()
	val := p.Addr().AsSlice()
	if bits > 0 && bits%8 == 0 {
		n := uint32(bits / 8)
		return []expr.Any{
			&expr.Payload{DestRegister: matchReg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
			&expr.Cmp{Op: op, Register: matchReg, Data: val[:n]},
		}
	}
	mask := make([]byte, full)
	for i := range bits {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: matchReg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: full},
		&expr.Bitwise{SourceRegister: matchReg, DestRegister: matchReg, Len: full, Mask: mask, Xor: make([]byte, full)},
		&expr.Cmp{Op: op, Register: matchReg, Data: val},
	}
}
