package ipam

import (
	"fmt"
	"net/netip"
)

// Pick returns the next address of s to hand out, in the reference's round-robin order: starting after
// last when s contains it (so a crash-looping pod does not get the same address back until the whole
// set has been used), otherwise at the first range's Start; wrapping from a range's End to the next
// range's Start; skipping each range's gateway and every address for which taken reports true. It also
// returns the index of the range the address is in. ok is false when every address is taken.
//
// The walk visits at most one address more than there are taken ones plus gateways, so it is cheap even
// for an IPv6 /64.
func (s RangeSet) Pick(last netip.Addr, taken func(netip.Addr) bool) (addr netip.Addr, rangeIdx int, ok bool) {
	if len(s) == 0 {
		return netip.Addr{}, -1, false
	}
	ri, cur := 0, s[0].Start
	if i, in := s.RangeFor(last); in {
		ri, cur = s.advance(i, last.Unmap())
	}
	startIdx, start := ri, cur
	for {
		r := s[ri]
		if cur != r.Gateway && !taken(cur) {
			return cur, ri, true
		}
		ri, cur = s.advance(ri, cur)
		if ri == startIdx && cur == start {
			return netip.Addr{}, -1, false
		}
	}
}

// advance steps from a in range i to the next address of the set, wrapping at the end of each range.
func (s RangeSet) advance(i int, a netip.Addr) (int, netip.Addr) {
	if a == s[i].End {
		i = (i + 1) % len(s)
		return i, s[i].Start
	}
	return i, a.Next()
}

// Leased counts the addresses of leased that s could hand out (in a range, not a gateway).
func (s RangeSet) Leased(leased []netip.Addr) uint64 {
	var n uint64
	for _, a := range leased {
		if i, ok := s.RangeFor(a); ok && a.Unmap() != s[i].Gateway {
			n++
		}
	}
	return n
}

// ExhaustedError says a range set has no free address.
type ExhaustedError struct {
	Set    RangeSet
	SetIdx int    // position of the set in the configuration: ranges[SetIdx]
	Size   uint64 // addresses the set can hand out, all leased
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("no free address in range %s (rangeset %d): all %d addresses are leased", e.Set, e.SetIdx, e.Size)
}
