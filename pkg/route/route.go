// Package route adds, verifies and removes routes.
package route

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/addr"
)

// Route is one route through a link. A zero GW means directly connected.
type Route struct {
	Dst      netip.Prefix
	GW       netip.Addr
	Priority int
	Table    int // 0: main
	Scope    *netlink.Scope
	// Protocol marks who installed the route (RTPROT_*); 0 leaves the kernel's default (boot). Routes
	// netloom reconciles carry one of the Proto* numbers below, so it never touches anyone else's.
	Protocol netlink.RouteProtocol
	// OnLink sends to GW through the link without asking whether GW is on its subnet: how a tunnel
	// route names the peer's underlay address as next hop.
	OnLink bool
	// Src is the preferred source address of packets the route sends; zero leaves it to the kernel.
	Src netip.Addr
}

// Route protocol numbers of the routes netloom reconciles (see /etc/iproute2/rt_protos for the numbers
// others use; these are unassigned there).
const (
	// ProtoOverlay marks the routes to peer nodes' pod CIDRs that vxlan-overlay and ipip-overlay keep.
	ProtoOverlay netlink.RouteProtocol = 78
	// ProtoBGP marks the routes netloomd installs from the best paths its BGP peers send.
	ProtoBGP netlink.RouteProtocol = 79
	// ProtoCluster marks the routes netloomd's cluster agent keeps to other nodes' pod CIDRs (routed mode).
	ProtoCluster netlink.RouteProtocol = 80
)

func (r Route) String() string {
	s := r.Dst.String()
	if r.GW.IsValid() {
		s += " via " + r.GW.String()
	}
	if r.OnLink {
		s += " onlink"
	}
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	if r.Table != 0 {
		s += fmt.Sprintf(" table %d", r.Table)
	}
	if r.Protocol != 0 {
		s += fmt.Sprintf(" proto %d", r.Protocol)
	}
	return s
}

func (r Route) netlink(l netlink.Link) *netlink.Route {
	idx := 0 // no link: the kernel picks the one that reaches GW
	if l != nil {
		idx = l.Attrs().Index
	}
	nr := &netlink.Route{
		LinkIndex: idx,
		Dst:       addr.IPNet(r.Dst.Masked()),
		Priority:  r.Priority,
		Table:     r.Table,
	}
	if r.GW.IsValid() {
		nr.Gw = r.GW.AsSlice()
	}
	if r.Scope != nil {
		nr.Scope = *r.Scope
	}
	nr.Protocol = r.Protocol
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.OnLink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	return nr
}

// Add installs r through l; an identical route already present is fine. Routes to the same destination
// through another next hop are added alongside (ECMP), as the reference plugins do.
func Add(l netlink.Link, r Route) error {
	if err := netlink.RouteAppend(r.netlink(l)); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add route %s dev %q: %w", r, l.Attrs().Name, err)
	}
	return nil
}

// Replace installs r through l, replacing any route to the same destination in the same table. A nil l
// lets the kernel pick the link that reaches r.GW.
func Replace(l netlink.Link, r Route) error {
	if err := netlink.RouteReplace(r.netlink(l)); err != nil {
		if l == nil {
			return fmt.Errorf("replace route %s: %w", r, err)
		}
		return fmt.Errorf("replace route %s dev %q: %w", r, l.Attrs().Name, err)
	}
	return nil
}

// Verify reports the first of want that is not installed through l. It lists each family once (a
// container holds a handful of routes) and compares in Go, so a default route matches whether the kernel
// reports its destination as nil or as 0.0.0.0/0.
func Verify(l netlink.Link, want []Route) error {
	cache := map[int][]netlink.Route{}
	for _, w := range want {
		family := netlink.FAMILY_V4
		if w.Dst.Addr().Is6() {
			family = netlink.FAMILY_V6
		}
		have, ok := cache[family]
		if !ok {
			var err error
			have, err = netlinksafe.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
			if err != nil {
				return fmt.Errorf("list routes: %w", err)
			}
			cache[family] = have
		}
		if !matches(have, l.Attrs().Index, w) {
			return fmt.Errorf("route %s dev %q is missing", w, l.Attrs().Name)
		}
	}
	return nil
}

func dst(r netlink.Route, family int) netip.Prefix {
	if r.Dst == nil {
		if family == netlink.FAMILY_V6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	p, _ := addr.FromIPNet(*r.Dst)
	return p
}

func matches(have []netlink.Route, ifindex int, w Route) bool {
	family := netlink.FAMILY_V4
	if w.Dst.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	table := w.Table
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	for _, h := range have {
		if dst(h, family) != w.Dst.Masked() || h.Table != table {
			continue
		}
		if !w.GW.IsValid() {
			if h.LinkIndex == ifindex && h.Gw == nil {
				return true
			}
			continue
		}
		if h.Gw != nil {
			if gw, ok := netip.AddrFromSlice(h.Gw); ok && gw.Unmap() == w.GW && h.LinkIndex == ifindex {
				return true
			}
		}
		for _, nh := range h.MultiPath {
			if gw, ok := netip.AddrFromSlice(nh.Gw); ok && gw.Unmap() == w.GW && nh.LinkIndex == ifindex {
				return true
			}
		}
	}
	return false
}

// Installed is a route as the kernel holds it: the link it goes through and the route.
type Installed struct {
	LinkIndex int
	Route
}

// ListByProtocol returns the main table's routes of both families whose protocol is proto.
func ListByProtocol(proto netlink.RouteProtocol) ([]Installed, error) {
	var out []Installed
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		have, err := netlinksafe.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: proto},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return nil, fmt.Errorf("list routes of protocol %d: %w", proto, err)
		}
		for _, h := range have {
			r := Installed{LinkIndex: h.LinkIndex, Route: Route{
				Dst: dst(h, family), Priority: h.Priority, Protocol: h.Protocol,
				OnLink: h.Flags&int(netlink.FLAG_ONLINK) != 0,
			}}
			if gw, ok := netip.AddrFromSlice(h.Gw); ok {
				r.GW = gw.Unmap()
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// DelInstalled removes a route ListByProtocol returned; already absent is fine.
func DelInstalled(r Installed) error {
	nr := r.netlink(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: r.LinkIndex, Name: fmt.Sprintf("ifindex %d", r.LinkIndex)}})
	if err := netlink.RouteDel(nr); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("remove route %s (ifindex %d): %w", r.Route, r.LinkIndex, err)
	}
	return nil
}
