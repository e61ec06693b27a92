package overlay

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/neigh"
	"github.com/netloom/netloom/pkg/route"
)

// target is what diff compares the kernel with: the tunnel device, the peer state Plan decides, and
// what tells this network's routes from others' of the same protocol.
type target struct {
	Desired
	device   link.TunnelSpec
	underlay string // the underlay interface's name; device.Underlay is its index
	// cluster bounds the overlay-protocol routes through the underlay that are this network's; when it is
	// invalid (no clusterCIDR), all of them are.
	cluster netip.Prefix
}

func (nw *Network) target() target {
	return target{Desired: nw.Plan(), device: nw.Tunnel(), underlay: nw.Underlay.Attrs().Name, cluster: nw.Conf.clusterCIDR}
}

// changes are what turns a state into a target, per kind of object. Each change's String is the line
// CHECK and `netloom overlay sync` print for it.
type changes struct {
	device      deviceChange
	staleRoutes []routeDel
	neighs      []neighChange
	fdb         []fdbChange
	addrs       []addrChange
	newRoutes   []routeAdd
}

// deviceChange is how the tunnel device differs from its spec, one line per difference; one
// link.EnsureTunnel fixes them all. remake: the device is missing or cannot be changed into the spec
// (another kind, VNI, port, local address or underlay), so it is made anew.
type deviceChange struct {
	diffs  []string
	remake bool
	// lowMTU is the line of diffs, if any, saying the MTU is below the computed one: packets still
	// pass, only smaller than they could be.
	lowMTU string
}

// entryChange is one change after the device's: a route, or an entry on the tunnel device. apply
// (reconcile.go) makes it.
type entryChange interface {
	fmt.Stringer
	apply(tun, underlay netlink.Link) error
}

// routeAdd installs route through the tunnel device, or through the underlay when route.Direct,
// replacing any route to the same destination; dev names that link.
type routeAdd struct {
	route PeerRoute
	dev   string
}

func (r routeAdd) String() string { return fmt.Sprintf("route %s dev %s", r.route.Route, r.dev) }

// routeDel removes a route of this network that no peer wants.
type routeDel struct{ route route.Installed }

func (r routeDel) String() string {
	return fmt.Sprintf("remove route %s (ifindex %d)", r.route.Route, r.route.LinkIndex)
}

// neighChange puts entry on the tunnel device in place of what it has for entry.IP, or, with remove,
// removes what it has for entry.IP.
type neighChange struct {
	entry  neigh.Entry
	remove bool
}

func (n neighChange) String() string {
	if n.remove {
		return "remove neighbour " + n.entry.IP.String()
	}
	return "neighbour " + n.entry.String()
}

// fdbChange points entry.MAC at entry.Dst on the tunnel device, or, with remove, deletes entry.
type fdbChange struct {
	entry  neigh.FDB
	remove bool
}

func (f fdbChange) String() string {
	if f.remove {
		return "remove fdb " + f.entry.String()
	}
	return "fdb " + f.entry.String()
}

// addrChange adds prefix to the tunnel device dev, or, with remove, removes it.
type addrChange struct {
	prefix netip.Prefix
	dev    string
	remove bool
}

func (a addrChange) String() string {
	if a.remove {
		return fmt.Sprintf("remove address %s dev %s", a.prefix, a.dev)
	}
	return fmt.Sprintf("address %s dev %s", a.prefix, a.dev)
}

// inOrder returns the changes after the device's in the order they are safe to make: stale routes first
// (no packet follows a route to a peer that left), then neighbour, FDB and address entries, then the
// new routes, so a route never points at an entry not yet there.
func (c changes) inOrder() []entryChange {
	var out []entryChange
	for _, r := range c.staleRoutes {
		out = append(out, r)
	}
	for _, n := range c.neighs {
		out = append(out, n)
	}
	for _, f := range c.fdb {
		out = append(out, f)
	}
	for _, a := range c.addrs {
		out = append(out, a)
	}
	for _, r := range c.newRoutes {
		out = append(out, r)
	}
	return out
}

// lines is how CHECK names the differences: the device's, then every other change in order.
func (c changes) lines() []string {
	out := slices.Clone(c.device.diffs)
	for _, e := range c.inOrder() {
		out = append(out, e.String())
	}
	return out
}

// split sorts c's lines into what pods lack (the device missing, down, unfit or with another MAC; a
// peer's route, neighbour, FDB entry or address missing or wrong) and what only tidies up (entries of
// peers that left, an MTU below the computed one).
func (c changes) split() (missing, tidy []string) {
	for _, d := range c.device.diffs {
		if d == c.device.lowMTU {
			tidy = append(tidy, d)
		} else {
			missing = append(missing, d)
		}
	}
	for _, e := range c.inOrder() {
		removal := false
		switch e := e.(type) {
		case routeDel:
			removal = true
		case neighChange:
			removal = e.remove
		case fdbChange:
			removal = e.remove
		case addrChange:
			removal = e.remove
		}
		if removal {
			tidy = append(tidy, e.String())
		} else {
			missing = append(missing, e.String())
		}
	}
	return missing, tidy
}

// diff decides what turns st into t. It reads no kernel. A device to be made anew is the only change:
// everything on it will be new, and is compared once it is there.
func diff(t target, st state) changes {
	c := changes{device: diffDevice(t.device, st.device)}
	if c.device.remake {
		return c
	}
	c.staleRoutes, c.newRoutes = diffRoutes(t, st.device.Attrs().Index, st.routes)
	c.neighs = diffNeighs(t.Neighs, st.neighs)
	if t.device.Kind == link.KindVXLAN {
		c.fdb = diffFDB(t.FDB, st.fdb)
	}
	c.addrs = diffAddrs(t.device.Name, t.TunnelAddrs, st.addrs)
	return c
}

// diffDevice compares the device named like the tunnel (nil: there is none) with spec.
func diffDevice(spec link.TunnelSpec, have netlink.Link) deviceChange {
	if have == nil {
		return deviceChange{diffs: []string{fmt.Sprintf("device %s does not exist", spec.Name)}, remake: true}
	}
	if why := link.TunnelMismatch(have, spec); why != "" {
		return deviceChange{diffs: []string{fmt.Sprintf("device %s: %s", spec.Name, why)}, remake: true}
	}
	var d deviceChange
	a := have.Attrs()
	if spec.MTU != 0 && a.MTU != spec.MTU {
		line := fmt.Sprintf("device %s: MTU %d, want %d", spec.Name, a.MTU, spec.MTU)
		d.diffs = append(d.diffs, line)
		if a.MTU < spec.MTU {
			d.lowMTU = line
		}
	}
	if spec.Kind == link.KindVXLAN && spec.MAC != nil && a.HardwareAddr.String() != spec.MAC.String() {
		d.diffs = append(d.diffs, fmt.Sprintf("device %s: MAC %s, want %s", spec.Name, a.HardwareAddr, spec.MAC))
	}
	if a.OperState == netlink.OperDown {
		d.diffs = append(d.diffs, fmt.Sprintf("device %s is down", spec.Name))
	}
	return d
}

// ours tells whether h, a route of the overlay protocol, is this network's: through the tunnel device
// (ifindex tunnel), or through the underlay to a destination inside the cluster CIDR. The protocol's
// other routes through the underlay belong to another overlay network there.
func (t target) ours(h route.Installed, tunnel int) bool {
	return h.LinkIndex == tunnel ||
		(h.LinkIndex == t.device.Underlay && (!t.cluster.IsValid() || t.cluster.Contains(h.Dst.Addr())))
}

// diffRoutes compares the routes t wants with have, every installed route of the overlay protocol.
// A wanted route is (re)installed when no route of ours goes to its destination through the right link
// and next hop; ours to other destinations are stale.
func diffRoutes(t target, tunnel int, have []route.Installed) (stale []routeDel, add []routeAdd) {
	byDst := map[netip.Prefix]route.Installed{}
	for _, h := range have {
		if t.ours(h, tunnel) {
			byDst[h.Dst] = h
		}
	}
	for _, w := range t.Routes {
		via, dev := tunnel, t.device.Name
		if w.Direct {
			via, dev = t.device.Underlay, t.underlay
		}
		h, ok := byDst[w.Dst]
		delete(byDst, w.Dst)
		if ok && h.LinkIndex == via && h.GW == w.GW && h.OnLink == w.OnLink {
			continue
		}
		add = append(add, routeAdd{route: w, dev: dev})
	}
	for _, dst := range slices.SortedFunc(maps.Keys(byDst), netip.Prefix.Compare) {
		stale = append(stale, routeDel{byDst[dst]})
	}
	return stale, add
}

// diffNeighs compares the permanent entries of the tunnel device with want: all of them are ours.
func diffNeighs(want, have []neigh.Entry) []neighChange {
	macs := map[netip.Addr]string{}
	for _, h := range have {
		macs[h.IP] = h.MAC.String()
	}
	var out []neighChange
	for _, w := range want {
		mac, ok := macs[w.IP]
		delete(macs, w.IP)
		if !ok || mac != w.MAC.String() {
			out = append(out, neighChange{entry: w})
		}
	}
	for _, ip := range slices.SortedFunc(maps.Keys(macs), netip.Addr.Compare) {
		out = append(out, neighChange{entry: neigh.Entry{IP: ip}, remove: true})
	}
	return out
}

// diffFDB compares the FDB entries of the VXLAN tunnel device with want, one per MAC: all of them are
// ours.
func diffFDB(want, have []neigh.FDB) []fdbChange {
	byMAC := map[string]neigh.FDB{}
	for _, h := range have {
		byMAC[h.MAC.String()] = h
	}
	var out []fdbChange
	for _, w := range want {
		h, ok := byMAC[w.MAC.String()]
		delete(byMAC, w.MAC.String())
		if !ok || h.Dst != w.Dst {
			out = append(out, fdbChange{entry: w})
		}
	}
	for _, mac := range slices.Sorted(maps.Keys(byMAC)) {
		out = append(out, fdbChange{entry: byMAC[mac], remove: true})
	}
	return out
}

// diffAddrs compares the global addresses of the tunnel device dev with want: all of them are ours.
func diffAddrs(dev string, want, have []netip.Prefix) []addrChange {
	extra := map[netip.Prefix]bool{}
	for _, h := range have {
		extra[h] = true
	}
	var out []addrChange
	for _, w := range want {
		if !extra[w] {
			out = append(out, addrChange{prefix: w, dev: dev})
		}
		delete(extra, w)
	}
	for _, p := range slices.SortedFunc(maps.Keys(extra), netip.Prefix.Compare) {
		out = append(out, addrChange{prefix: p, dev: dev, remove: true})
	}
	return out
}
