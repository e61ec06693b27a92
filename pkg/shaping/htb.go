package shaping

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// The htb layout, used instead of the tbf when only part of a pod's traffic is to be shaped
// (unshapedSubnets, shapedSubnets). Its numbering is the one the upstream bandwidth plugin used while it
// had those keys, so tools written for it find the classes: root qdisc htb 1:, the shaped class 1:30,
// the unshaped class 1:1, and u32 filters at priority 16 (IPv4) and 15 (IPv6) under 1:.
const (
	UnshapedClass uint16 = 1
	ShapedClass   uint16 = 0x30
	// UncappedRate is the unshaped class's rate and ceiling, in bytes per second (800 Gbit/s).
	UncappedRate uint64 = 100_000_000_000
	// HTBQueueLen is the transmit queue of an ifb shaped by an htb: the length of its classes' queues.
	HTBQueueLen        = 1000
	prioIPv4    uint16 = 16
	prioIPv6    uint16 = 15
	// Offsets of the source and destination addresses in the IPv4 and IPv6 headers.
	offIPv4Src, offIPv4Dst = 12, 16
	offIPv6Src, offIPv6Dst = 8, 24
)

// Direction says which way the shaped traffic flows, and so which address of a packet is the pod's
// peer, the one a subnet is matched against.
type Direction int

const (
	// ToPod is what the pod receives, shaped on the host end of its veth: the peer is the source.
	ToPod Direction = iota
	// FromPod is what the pod sends, shaped on its ifb: the peer is the destination.
	FromPod
)

// Subnets selects part of a pod's traffic by its peer's address: with Exclude (unshapedSubnets) these
// peers are not shaped and all others are; without it (shapedSubnets) only these are.
type Subnets struct {
	List    []netip.Prefix
	Exclude bool
}

// Match is one u32 filter of the htb layout: packets of Protocol whose header matches every key go to
// the class 1:Class.
type Match struct {
	Prio, Protocol, Class uint16
	Keys                  []netlink.TcU32Key // Val, Mask, Off only
}

func (m Match) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "prio %d protocol %#04x class 1:%x", m.Prio, m.Protocol, m.Class)
	for _, k := range m.Keys {
		fmt.Fprintf(&b, " match %08x/%08x at %d", k.Val, k.Mask, k.Off)
	}
	return b.String()
}

// HTB is the desired htb layout of one link.
type HTB struct {
	Default uint16 // the class of unmatched packets
	Shaped  TBF    // rate and buffer of the shaped class (its ceiling is its rate)
	Filters []Match
}

// HTBFor is the htb layout shaping l for the peers s selects, in direction d.
func HTBFor(l Limit, s Subnets, d Direction) HTB {
	h := HTB{Default: UnshapedClass, Shaped: TBFFor(l)}
	class := ShapedClass
	if s.Exclude {
		h.Default, class = ShapedClass, UnshapedClass
	}
	for _, p := range s.List {
		h.Filters = append(h.Filters, subnetMatch(p.Masked(), d, class))
	}
	return h
}

// subnetMatch is the u32 filter sending packets whose peer is in p to class: one key per 32-bit word of
// the address that the prefix constrains (none for a /0, which matches every packet of the family).
func subnetMatch(p netip.Prefix, d Direction, class uint16) Match {
	m := Match{Prio: prioIPv6, Protocol: syscall.ETH_P_IPV6, Class: class}
	off := int32(offIPv6Dst)
	if d == ToPod {
		off = offIPv6Src
	}
	if p.Addr().Is4() {
		m.Prio, m.Protocol, off = prioIPv4, syscall.ETH_P_IP, offIPv4Dst
		if d == ToPod {
			off = offIPv4Src
		}
	}
	addr := p.Addr().AsSlice()
	for i, bits := 0, p.Bits(); bits > 0; i, bits = i+4, bits-32 {
		mask := ^uint32(0)
		if bits < 32 {
			mask = ^(^uint32(0) >> bits)
		}
		m.Keys = append(m.Keys, netlink.TcU32Key{Val: binary.BigEndian.Uint32(addr[i:]) & mask, Mask: mask, Off: off + int32(i)})
	}
	return m
}

// EnsureHTB makes h the root qdisc of l (replacing a root qdisc of another kind) with its two classes
// and its filters; filters under 1: that h does not hold are removed.
func EnsureHTB(l netlink.Link, h HTB) error {
	name, idx := l.Attrs().Name, l.Attrs().Index
	q := &netlink.Htb{
		QdiscAttrs:   netlink.QdiscAttrs{LinkIndex: idx, Handle: rootHandle, Parent: netlink.HANDLE_ROOT},
		Defcls:       uint32(h.Default),
		Version:      3,
		Rate2Quantum: 10,
	}
	if err := replaceRoot(l, q); err != nil {
		return err
	}
	for _, c := range []*netlink.HtbClass{
		{ClassAttrs: netlink.ClassAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(1, ShapedClass), Parent: rootHandle},
			Rate: h.Shaped.Rate, Ceil: h.Shaped.Rate, Buffer: h.Shaped.Buffer, Cbuffer: h.Shaped.Buffer},
		{ClassAttrs: netlink.ClassAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(1, UnshapedClass), Parent: rootHandle},
			Rate: UncappedRate, Ceil: UncappedRate},
	} {
		if err := netlink.ClassReplace(c); err != nil {
			return fmt.Errorf("%q: htb class %x:%x: %w", name, c.Handle>>16, c.Handle&0xffff, err)
		}
	}
	have, err := htbFilters(l)
	if err != nil {
		return err
	}
	if sameMatches(have, h.Filters) {
		return nil
	}
	for _, f := range have {
		if err := netlink.FilterDel(f); err != nil && !gone(err) {
			return fmt.Errorf("%q: delete htb filter: %w", name, err)
		}
	}
	for _, m := range h.Filters {
		f := &netlink.U32{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: rootHandle, Priority: m.Prio, Protocol: m.Protocol},
			ClassId:     netlink.MakeHandle(1, m.Class),
		}
		if len(m.Keys) > 0 {
			f.Sel = &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Nkeys: uint8(len(m.Keys)), Keys: slices.Clone(m.Keys)}
		}
		if err := netlink.FilterAdd(f); err != nil {
			return fmt.Errorf("%q: htb filter %s: %w", name, m, err)
		}
	}
	return nil
}

// CheckHTB verifies that l's root qdisc is h: its default class, the shaped class's rate, ceiling and
// buffer, the unshaped class's rate, and the filters.
func CheckHTB(l netlink.Link, h HTB) error {
	name := l.Attrs().Name
	q, err := rootQdisc(l)
	if err != nil {
		return err
	}
	htb, ok := q.(*netlink.Htb)
	if !ok {
		return fmt.Errorf("%q: root qdisc 1: is a %s, want htb", name, q.Type())
	}
	if htb.Defcls != uint32(h.Default) {
		return fmt.Errorf("%q: htb default class 1:%x, want 1:%x", name, htb.Defcls, h.Default)
	}
	classes, err := netlink.ClassList(l, rootHandle)
	if err != nil {
		return fmt.Errorf("%q: list htb classes: %w", name, err)
	}
	found := 0
	for _, c := range classes {
		hc, ok := c.(*netlink.HtbClass)
		if !ok {
			continue
		}
		switch hc.Handle {
		case netlink.MakeHandle(1, ShapedClass):
			found++
			if hc.Rate != h.Shaped.Rate || hc.Ceil != h.Shaped.Rate || hc.Buffer != h.Shaped.Buffer {
				return fmt.Errorf("%q: shaped class 1:%x has rate %d ceil %d buffer %d, want rate and ceil %d buffer %d",
					name, ShapedClass, hc.Rate, hc.Ceil, hc.Buffer, h.Shaped.Rate, h.Shaped.Buffer)
			}
		case netlink.MakeHandle(1, UnshapedClass):
			found++
			if hc.Rate != UncappedRate {
				return fmt.Errorf("%q: unshaped class 1:%x has rate %d, want %d", name, UnshapedClass, hc.Rate, UncappedRate)
			}
		}
	}
	if found != 2 {
		return fmt.Errorf("%q: htb has %d of its classes 1:%x and 1:%x", name, found, ShapedClass, UnshapedClass)
	}
	have, err := htbFilters(l)
	if err != nil {
		return err
	}
	if !sameMatches(have, h.Filters) {
		var got []string
		for _, f := range have {
			got = append(got, matchOf(f).String())
		}
		return fmt.Errorf("%q: htb filters [%s], want %v", name, strings.Join(got, "; "), h.Filters)
	}
	return nil
}

// htbFilters returns the classifying u32 filters under 1: (not the hash tables the kernel lists too).
func htbFilters(l netlink.Link) ([]*netlink.U32, error) {
	fs, err := netlink.FilterList(l, rootHandle)
	if err != nil {
		return nil, fmt.Errorf("%q: list htb filters: %w", l.Attrs().Name, err)
	}
	var out []*netlink.U32
	for _, f := range fs {
		if u, ok := f.(*netlink.U32); ok && u.ClassId != 0 {
			out = append(out, u)
		}
	}
	return out, nil
}

func matchOf(u *netlink.U32) Match {
	m := Match{Prio: u.Priority, Protocol: u.Protocol, Class: uint16(u.ClassId & 0xffff)}
	if u.Sel != nil {
		for _, k := range u.Sel.Keys[:u.Sel.Nkeys] {
			m.Keys = append(m.Keys, netlink.TcU32Key{Val: k.Val, Mask: k.Mask, Off: k.Off})
		}
	}
	return m
}

// sameMatches reports whether the kernel's filters are exactly want, in any order.
func sameMatches(have []*netlink.U32, want []Match) bool {
	var a, b []string
	for _, f := range have {
		a = append(a, matchOf(f).String())
	}
	for _, m := range want {
		b = append(b, m.String())
	}
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
