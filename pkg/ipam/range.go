// Package ipam allocates IP addresses the way the reference host-local plugin does, so a node can switch
// between the two without losing a lease: ranges and range sets with the same defaults, round-robin
// allocation after the last reserved address (pure functions in this file and alloc.go), and the same
// on-disk store, one file per leased address under <dataDir>/<network>/, guarded by a flock (store.go).
package ipam

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
)

// Range is one pool of addresses inside a subnet: Start..End inclusive, never handing out Gateway.
type Range struct {
	Subnet  netip.Prefix // network address, no host bits
	Start   netip.Addr
	End     netip.Addr
	Gateway netip.Addr
}

// RangeSet is a list of disjoint ranges of one address family; an attachment gets one address per set.
type RangeSet []Range

// FirstHost is the default gateway and rangeStart of a subnet: the address after the network address.
func FirstHost(subnet netip.Prefix) netip.Addr {
	return subnet.Masked().Addr().Next()
}

// LastHost is the default rangeEnd of a subnet: its last address, less the broadcast address for IPv4.
func LastHost(subnet netip.Prefix) netip.Addr {
	last := LastAddr(subnet)
	if last.Is4() {
		return last.Prev()
	}
	return last
}

// LastAddr is the highest address of subnet.
func LastAddr(subnet netip.Prefix) netip.Addr {
	a := subnet.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], subnet.Bits())
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	setHostBits(b[:], subnet.Bits())
	return netip.AddrFrom16(b)
}

func setHostBits(b []byte, bits int) {
	for i := range b {
		switch {
		case bits >= 8:
			bits -= 8
		case bits > 0:
			b[i] |= 0xff >> bits
			bits = 0
		default:
			b[i] = 0xff
		}
	}
}

// Contains reports whether a is in Start..End (the gateway included: it is in the range, just never
// handed out).
func (r Range) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return a.BitLen() == r.Start.BitLen() && r.Start.Compare(a) <= 0 && a.Compare(r.End) <= 0
}

// Overlaps reports whether r and o share an address.
func (r Range) Overlaps(o Range) bool {
	return r.Start.BitLen() == o.Start.BitLen() && r.Start.Compare(o.End) <= 0 && o.Start.Compare(r.End) <= 0
}

// Size is how many addresses r can hand out (Start..End less the gateway), saturating at MaxUint64.
func (r Range) Size() uint64 {
	n, exact := span(r.Start, r.End)
	if exact && r.Contains(r.Gateway) {
		n--
	}
	return n
}

// span counts Start..End inclusive; exact is false when the count exceeds MaxUint64 and n saturates.
func span(start, end netip.Addr) (n uint64, exact bool) {
	s, e := start.As16(), end.As16()
	sHi, sLo := be64(s[:8]), be64(s[8:])
	eHi, eLo := be64(e[:8]), be64(e[8:])
	lo := eLo - sLo
	hi := eHi - sHi
	if eLo < sLo {
		hi--
	}
	if hi != 0 || lo == math.MaxUint64 {
		return math.MaxUint64, false
	}
	return lo + 1, true
}

func be64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// String names the range as a person wrote it: the subnet alone when Start and End are the defaults,
// else the subnet and the bounds ("10.1.0.0/16 (10.1.1.20-10.1.3.50)").
func (r Range) String() string {
	if r.Start == FirstHost(r.Subnet) && r.End == LastHost(r.Subnet) {
		return r.Subnet.String()
	}
	return fmt.Sprintf("%s (%s-%s)", r.Subnet, r.Start, r.End)
}

// RangeFor returns the index of the range in s that contains a.
func (s RangeSet) RangeFor(a netip.Addr) (int, bool) {
	for i, r := range s {
		if r.Contains(a) {
			return i, true
		}
	}
	return -1, false
}

// Contains reports whether any range of s contains a.
func (s RangeSet) Contains(a netip.Addr) bool {
	_, ok := s.RangeFor(a)
	return ok
}

// Size is how many addresses s can hand out, saturating at MaxUint64.
func (s RangeSet) Size() uint64 {
	var n uint64
	for _, r := range s {
		rs := r.Size()
		if rs > math.MaxUint64-n {
			return math.MaxUint64
		}
		n += rs
	}
	return n
}

func (s RangeSet) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}
