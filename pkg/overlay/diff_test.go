package overlay

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/neigh"
	"github.com/netloom/netloom/pkg/route"
)

// The node of these tests: underlay eth0 (ifindex 2) at 192.168.1.10, tunnel nlvx0 (ifindex 10), pods
// of the cluster in 10.244.0.0/16.
const (
	testTunnel   = 10
	testUnderlay = 2
)

var testVTEPMAC = net.HardwareAddr{0x0e, 0x4c, 0xc0, 0xa8, 0x01, 0x0a}

func testSpec(kind string) link.TunnelSpec {
	s := link.TunnelSpec{Kind: kind, Name: "nlvx0", Local: netip.MustParseAddr("192.168.1.10"), Underlay: testUnderlay, MTU: 1450}
	if kind == link.KindVXLAN {
		s.VNI, s.Port, s.MAC = 1, 4789, testVTEPMAC
	}
	return s
}

func testTarget(kind string, d Desired) target {
	return target{Desired: d, device: testSpec(kind), underlay: "eth0", cluster: netip.MustParsePrefix("10.244.0.0/16")}
}

// vxlanDevice is the device testSpec(vxlan) describes, as the kernel would report it, up.
func vxlanDevice() *netlink.Vxlan {
	return &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: "nlvx0", Index: testTunnel, MTU: 1450, HardwareAddr: testVTEPMAC, OperState: netlink.OperUnknown},
		VxlanId:   1, Port: 4789, SrcAddr: net.ParseIP("192.168.1.10"), VtepDevIndex: testUnderlay, UDPCSum: true,
	}
}

func ipipDevice() *netlink.Iptun {
	return &netlink.Iptun{
		LinkAttrs: netlink.LinkAttrs{Name: "nlvx0", Index: testTunnel, MTU: 1450, OperState: netlink.OperUnknown, ParentIndex: testUnderlay},
		Local:     net.ParseIP("192.168.1.10"),
	}
}

func strs[T interface{ String() string }](cs []T) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

func checkLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestDiffDevice(t *testing.T) {
	vx := func(f func(v *netlink.Vxlan)) netlink.Link {
		v := vxlanDevice()
		f(v)
		return v
	}
	ip := func(f func(v *netlink.Iptun)) netlink.Link {
		v := ipipDevice()
		f(v)
		return v
	}
	for _, tc := range []struct {
		name   string
		kind   string
		have   netlink.Link
		diffs  []string
		remake bool
	}{
		{name: "vxlan as specified", kind: link.KindVXLAN, have: vxlanDevice()},
		{name: "ipip as specified", kind: link.KindIPIP, have: ipipDevice()},
		{name: "missing", kind: link.KindVXLAN, diffs: []string{"device nlvx0 does not exist"}, remake: true},
		{
			name: "another kind", kind: link.KindVXLAN, have: ipipDevice(),
			diffs: []string{"device nlvx0: it is a ipip device, not vxlan"}, remake: true,
		},
		{
			name: "another VNI", kind: link.KindVXLAN, have: vx(func(v *netlink.Vxlan) { v.VxlanId = 99 }),
			diffs: []string{"device nlvx0: its VNI is 99, not 1"}, remake: true,
		},
		{
			// Made anew: the MTU and the state do not matter.
			name: "another underlay, wrong MTU, down", kind: link.KindIPIP,
			have:  ip(func(v *netlink.Iptun) { v.ParentIndex, v.MTU, v.OperState = 7, 1500, netlink.OperDown }),
			diffs: []string{"device nlvx0: its underlay device is ifindex 7, not 2"}, remake: true,
		},
		{
			name: "MTU", kind: link.KindVXLAN, have: vx(func(v *netlink.Vxlan) { v.MTU = 1500 }),
			diffs: []string{"device nlvx0: MTU 1500, want 1450"},
		},
		{
			name: "MAC", kind: link.KindVXLAN, have: vx(func(v *netlink.Vxlan) { v.HardwareAddr = net.HardwareAddr{2, 0, 0, 0, 0, 1} }),
			diffs: []string{"device nlvx0: MAC 02:00:00:00:00:01, want 0e:4c:c0:a8:01:0a"},
		},
		{
			name: "down", kind: link.KindIPIP, have: ip(func(v *netlink.Iptun) { v.OperState = netlink.OperDown }),
			diffs: []string{"device nlvx0 is down"},
		},
		{
			name: "MTU, MAC and down", kind: link.KindVXLAN,
			have: vx(func(v *netlink.Vxlan) {
				v.MTU, v.HardwareAddr, v.OperState = 1400, net.HardwareAddr{2, 0, 0, 0, 0, 1}, netlink.OperDown
			}),
			diffs: []string{"device nlvx0: MTU 1400, want 1450", "device nlvx0: MAC 02:00:00:00:00:01, want 0e:4c:c0:a8:01:0a", "device nlvx0 is down"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := diffDevice(testSpec(tc.kind), tc.have)
			checkLines(t, "differences", got.diffs, tc.diffs)
			if got.remake != tc.remake {
				t.Errorf("remake = %v, want %v", got.remake, tc.remake)
			}
		})
	}
}

func TestDiffRoutes(t *testing.T) {
	pfx := netip.MustParsePrefix
	ip := netip.MustParseAddr
	tunnelRoute := func(dst, gw string) PeerRoute {
		return PeerRoute{Route: route.Route{Dst: pfx(dst), GW: ip(gw), OnLink: true, Protocol: route.ProtoOverlay}}
	}
	directRoute := func(dst, gw string) PeerRoute {
		return PeerRoute{Direct: true, Route: route.Route{Dst: pfx(dst), GW: ip(gw), Protocol: route.ProtoOverlay}}
	}
	installed := func(ifindex int, r PeerRoute) route.Installed {
		return route.Installed{LinkIndex: ifindex, Route: r.Route}
	}
	for _, tc := range []struct {
		name       string
		want       []PeerRoute
		have       []route.Installed
		noCluster  bool // no clusterCIDR
		stale, add []string
	}{
		{name: "nothing wanted, nothing there"},
		{
			name: "missing",
			want: []PeerRoute{tunnelRoute("10.244.2.0/24", "192.168.2.12"), directRoute("10.244.3.0/24", "192.168.1.11")},
			add:  []string{"route 10.244.2.0/24 via 192.168.2.12 onlink proto 78 dev nlvx0", "route 10.244.3.0/24 via 192.168.1.11 proto 78 dev eth0"},
		},
		{
			name: "in place",
			want: []PeerRoute{tunnelRoute("10.244.2.0/24", "192.168.2.12"), directRoute("10.244.3.0/24", "192.168.1.11")},
			have: []route.Installed{installed(testTunnel, tunnelRoute("10.244.2.0/24", "192.168.2.12")), installed(testUnderlay, directRoute("10.244.3.0/24", "192.168.1.11"))},
		},
		{
			name: "next hop changed",
			want: []PeerRoute{tunnelRoute("10.244.2.0/24", "192.168.2.13")},
			have: []route.Installed{installed(testTunnel, tunnelRoute("10.244.2.0/24", "192.168.2.12"))},
			add:  []string{"route 10.244.2.0/24 via 192.168.2.13 onlink proto 78 dev nlvx0"},
		},
		{
			name: "onlink lost",
			want: []PeerRoute{tunnelRoute("10.244.2.0/24", "192.168.2.12")},
			have: []route.Installed{{LinkIndex: testTunnel, Route: route.Route{Dst: pfx("10.244.2.0/24"), GW: ip("192.168.2.12"), Protocol: route.ProtoOverlay}}},
			add:  []string{"route 10.244.2.0/24 via 192.168.2.12 onlink proto 78 dev nlvx0"},
		},
		{
			// The peer moved off this node's subnet: its route is replaced, not removed and added.
			name: "direct becomes tunnelled",
			want: []PeerRoute{tunnelRoute("10.244.3.0/24", "192.168.7.11")},
			have: []route.Installed{installed(testUnderlay, directRoute("10.244.3.0/24", "192.168.1.11"))},
			add:  []string{"route 10.244.3.0/24 via 192.168.7.11 onlink proto 78 dev nlvx0"},
		},
		{
			name: "tunnelled becomes direct",
			want: []PeerRoute{directRoute("10.244.3.0/24", "192.168.1.11")},
			have: []route.Installed{installed(testTunnel, tunnelRoute("10.244.3.0/24", "192.168.1.11"))},
			add:  []string{"route 10.244.3.0/24 via 192.168.1.11 proto 78 dev eth0"},
		},
		{
			name: "stale, sorted by destination",
			have: []route.Installed{
				installed(testUnderlay, directRoute("10.244.9.0/24", "192.168.1.19")),
				installed(testTunnel, tunnelRoute("10.244.4.0/24", "192.168.2.14")),
				installed(testTunnel, tunnelRoute("10.244.2.0/25", "192.168.2.12")),
			},
			stale: []string{
				"remove route 10.244.2.0/25 via 192.168.2.12 onlink proto 78 (ifindex 10)",
				"remove route 10.244.4.0/24 via 192.168.2.14 onlink proto 78 (ifindex 10)",
				"remove route 10.244.9.0/24 via 192.168.1.19 proto 78 (ifindex 2)",
			},
		},
		{
			// Another overlay network on the same underlay, or a route of the protocol through a link
			// that is neither ours: not this network's to remove.
			name: "not ours",
			have: []route.Installed{
				installed(testUnderlay, directRoute("10.98.0.0/24", "192.168.1.1")),
				installed(7, tunnelRoute("10.244.5.0/24", "192.168.2.15")),
			},
		},
		{
			name:      "no cluster CIDR: every route through the underlay is ours",
			noCluster: true,
			have:      []route.Installed{installed(testUnderlay, directRoute("10.98.0.0/24", "192.168.1.1"))},
			stale:     []string{"remove route 10.98.0.0/24 via 192.168.1.1 proto 78 (ifindex 2)"},
		},
		{
			name: "IPv6",
			want: []PeerRoute{tunnelRoute("fd00:10:244:2::/64", "fd00:10:244:2::")},
			have: []route.Installed{
				installed(testTunnel, tunnelRoute("fd00:10:244:3::/64", "fd00:10:244:3::")),
				installed(testUnderlay, directRoute("fd00:10:244:4::/64", "2001:db8::4")),
			},
			noCluster: true,
			stale: []string{
				"remove route fd00:10:244:3::/64 via fd00:10:244:3:: onlink proto 78 (ifindex 10)",
				"remove route fd00:10:244:4::/64 via 2001:db8::4 proto 78 (ifindex 2)",
			},
			add: []string{"route fd00:10:244:2::/64 via fd00:10:244:2:: onlink proto 78 dev nlvx0"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := testTarget(link.KindVXLAN, Desired{Routes: tc.want})
			if tc.noCluster {
				tg.cluster = netip.Prefix{}
			}
			stale, add := diffRoutes(tg, testTunnel, tc.have)
			checkLines(t, "stale", strs(stale), tc.stale)
			checkLines(t, "add", strs(add), tc.add)
		})
	}
}

func TestDiffNeighs(t *testing.T) {
	e := func(ip, mac string) neigh.Entry {
		m, err := net.ParseMAC(mac)
		if err != nil {
			t.Fatal(err)
		}
		return neigh.Entry{IP: netip.MustParseAddr(ip), MAC: m}
	}
	for _, tc := range []struct {
		name       string
		want, have []neigh.Entry
		changes    []string
	}{
		{name: "empty"},
		{
			name:    "missing, in the plan's order",
			want:    []neigh.Entry{e("192.168.2.12", "0e:4c:c0:a8:02:0c"), e("192.168.1.11", "0a:00:00:00:00:0b")},
			changes: []string{"neighbour 192.168.2.12 lladdr 0e:4c:c0:a8:02:0c", "neighbour 192.168.1.11 lladdr 0a:00:00:00:00:0b"},
		},
		{
			name: "in place",
			want: []neigh.Entry{e("192.168.2.12", "0e:4c:c0:a8:02:0c")},
			have: []neigh.Entry{e("192.168.2.12", "0e:4c:c0:a8:02:0c")},
		},
		{
			name:    "MAC changed",
			want:    []neigh.Entry{e("192.168.2.12", "0a:00:00:00:00:14")},
			have:    []neigh.Entry{e("192.168.2.12", "0a:00:00:00:00:13")},
			changes: []string{"neighbour 192.168.2.12 lladdr 0a:00:00:00:00:14"},
		},
		{
			name:    "stale after the wanted, sorted",
			want:    []neigh.Entry{e("192.168.2.12", "0e:4c:c0:a8:02:0c")},
			have:    []neigh.Entry{e("fd00::1", "02:00:00:00:00:03"), e("192.168.9.9", "02:00:00:00:00:02"), e("192.168.1.50", "02:00:00:00:00:01")},
			changes: []string{"neighbour 192.168.2.12 lladdr 0e:4c:c0:a8:02:0c", "remove neighbour 192.168.1.50", "remove neighbour 192.168.9.9", "remove neighbour fd00::1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLines(t, "changes", strs(diffNeighs(tc.want, tc.have)), tc.changes)
		})
	}
}

func TestDiffFDB(t *testing.T) {
	f := func(mac, dst string) neigh.FDB {
		m, err := net.ParseMAC(mac)
		if err != nil {
			t.Fatal(err)
		}
		return neigh.FDB{MAC: m, Dst: netip.MustParseAddr(dst)}
	}
	for _, tc := range []struct {
		name       string
		want, have []neigh.FDB
		changes    []string
	}{
		{name: "empty"},
		{
			name:    "missing",
			want:    []neigh.FDB{f("0e:4c:c0:a8:02:0c", "192.168.2.12"), f("0a:00:00:00:00:0b", "192.168.1.11")},
			changes: []string{"fdb 0e:4c:c0:a8:02:0c dst 192.168.2.12", "fdb 0a:00:00:00:00:0b dst 192.168.1.11"},
		},
		{
			name: "in place",
			want: []neigh.FDB{f("0e:4c:c0:a8:02:0c", "192.168.2.12")},
			have: []neigh.FDB{f("0e:4c:c0:a8:02:0c", "192.168.2.12")},
		},
		{
			// The node got a new underlay address but kept its VTEP MAC: the entry is replaced.
			name:    "destination changed",
			want:    []neigh.FDB{f("0a:00:00:00:00:0b", "192.168.1.12")},
			have:    []neigh.FDB{f("0a:00:00:00:00:0b", "192.168.1.11")},
			changes: []string{"fdb 0a:00:00:00:00:0b dst 192.168.1.12"},
		},
		{
			// The node changed its VTEP MAC: the new entry, and the old one removed.
			name:    "MAC changed",
			want:    []neigh.FDB{f("0a:00:00:00:00:14", "192.168.2.13")},
			have:    []neigh.FDB{f("0a:00:00:00:00:13", "192.168.2.13")},
			changes: []string{"fdb 0a:00:00:00:00:14 dst 192.168.2.13", "remove fdb 0a:00:00:00:00:13 dst 192.168.2.13"},
		},
		{
			name:    "stale, sorted by MAC",
			have:    []neigh.FDB{f("0e:4c:c0:a8:02:0c", "192.168.2.12"), f("0a:00:00:00:00:0b", "192.168.1.11")},
			changes: []string{"remove fdb 0a:00:00:00:00:0b dst 192.168.1.11", "remove fdb 0e:4c:c0:a8:02:0c dst 192.168.2.12"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLines(t, "changes", strs(diffFDB(tc.want, tc.have)), tc.changes)
		})
	}
}

func TestDiffAddrs(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		name       string
		want, have []netip.Prefix
		changes    []string
	}{
		{name: "empty"},
		{name: "missing", want: []netip.Prefix{p("10.244.1.0/32")}, changes: []string{"address 10.244.1.0/32 dev nlvx0"}},
		{name: "in place", want: []netip.Prefix{p("10.244.1.0/32")}, have: []netip.Prefix{p("10.244.1.0/32")}},
		{
			// The node's pod CIDR changed: the new address first, then the old ones, sorted.
			name:    "replaced",
			want:    []netip.Prefix{p("10.244.7.0/32")},
			have:    []netip.Prefix{p("fd00:10:244:1::/128"), p("10.244.1.0/32")},
			changes: []string{"address 10.244.7.0/32 dev nlvx0", "remove address 10.244.1.0/32 dev nlvx0", "remove address fd00:10:244:1::/128 dev nlvx0"},
		},
		{
			// Another prefix length is another address.
			name:    "prefix length",
			want:    []netip.Prefix{p("10.244.1.0/32")},
			have:    []netip.Prefix{p("10.244.1.0/24")},
			changes: []string{"address 10.244.1.0/32 dev nlvx0", "remove address 10.244.1.0/24 dev nlvx0"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLines(t, "changes", strs(diffAddrs("nlvx0", tc.want, tc.have)), tc.changes)
		})
	}
}

// TestDiff covers what diff adds to the per-kind diffs: the order of the changes, FDB for VXLAN only,
// and a device to be made anew, which is then the only difference (the stale route through the
// underlay included: it is removed once the device is there).
func TestDiff(t *testing.T) {
	pfx := netip.MustParsePrefix
	ip := netip.MustParseAddr
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	peerB := route.Route{Dst: pfx("10.244.3.0/24"), GW: ip("192.168.2.13"), OnLink: true, Protocol: route.ProtoOverlay}
	gone := route.Route{Dst: pfx("10.244.2.0/24"), GW: ip("192.168.1.12"), OnLink: true, Protocol: route.ProtoOverlay}
	want := Desired{
		TunnelAddrs: []netip.Prefix{pfx("10.244.1.0/32")},
		Routes:      []PeerRoute{{Route: peerB}},
		Neighs:      []neigh.Entry{{IP: ip("192.168.2.13"), MAC: mac("0a:00:00:00:00:14")}},
		FDB:         []neigh.FDB{{MAC: mac("0a:00:00:00:00:14"), Dst: ip("192.168.2.13")}},
	}
	// The node as it was before peer A left and peer B changed its VTEP MAC, with a route to another
	// network's pods on the underlay and an MTU to fix.
	before := func(dev netlink.Link) state {
		return state{
			device: dev,
			routes: []route.Installed{
				{LinkIndex: testTunnel, Route: gone},
				{LinkIndex: testTunnel, Route: peerB},
				{LinkIndex: testUnderlay, Route: route.Route{Dst: pfx("10.98.0.0/24"), GW: ip("192.168.1.1"), Protocol: route.ProtoOverlay}},
			},
			neighs: []neigh.Entry{{IP: ip("192.168.1.12"), MAC: mac("0e:4c:c0:a8:01:0c")}, {IP: ip("192.168.2.13"), MAC: mac("0a:00:00:00:00:13")}},
			fdb:    []neigh.FDB{{MAC: mac("0e:4c:c0:a8:01:0c"), Dst: ip("192.168.1.12")}, {MAC: mac("0a:00:00:00:00:13"), Dst: ip("192.168.2.13")}},
			addrs:  []netip.Prefix{pfx("10.244.1.0/32")},
		}
	}
	wideMTU := vxlanDevice()
	wideMTU.MTU = 1500
	otherVNI := vxlanDevice()
	otherVNI.VxlanId = 99
	for _, tc := range []struct {
		name    string
		kind    string
		want    Desired
		st      state
		device  []string // the device's differences
		changes []string // inOrder
		lines   []string // what CHECK names
	}{
		{name: "nothing wanted, nothing there", kind: link.KindVXLAN, st: state{device: vxlanDevice()}},
		{
			name:   "in order",
			kind:   link.KindVXLAN,
			want:   want,
			st:     before(wideMTU),
			device: []string{"device nlvx0: MTU 1500, want 1450"},
			changes: []string{
				"remove route 10.244.2.0/24 via 192.168.1.12 onlink proto 78 (ifindex 10)",
				"neighbour 192.168.2.13 lladdr 0a:00:00:00:00:14",
				"remove neighbour 192.168.1.12",
				"fdb 0a:00:00:00:00:14 dst 192.168.2.13",
				"remove fdb 0a:00:00:00:00:13 dst 192.168.2.13",
				"remove fdb 0e:4c:c0:a8:01:0c dst 192.168.1.12",
			},
			lines: []string{
				"device nlvx0: MTU 1500, want 1450",
				"remove route 10.244.2.0/24 via 192.168.1.12 onlink proto 78 (ifindex 10)",
				"neighbour 192.168.2.13 lladdr 0a:00:00:00:00:14",
				"remove neighbour 192.168.1.12",
				"fdb 0a:00:00:00:00:14 dst 192.168.2.13",
				"remove fdb 0a:00:00:00:00:13 dst 192.168.2.13",
				"remove fdb 0e:4c:c0:a8:01:0c dst 192.168.1.12",
			},
		},
		{
			name:   "device missing",
			kind:   link.KindVXLAN,
			want:   want,
			st:     state{routes: before(nil).routes},
			device: []string{"device nlvx0 does not exist"},
			lines:  []string{"device nlvx0 does not exist"},
		},
		{
			name:   "device made anew",
			kind:   link.KindVXLAN,
			want:   want,
			st:     before(otherVNI),
			device: []string{"device nlvx0: its VNI is 99, not 1"},
			lines:  []string{"device nlvx0: its VNI is 99, not 1"},
		},
		{
			// An IP-in-IP device has no FDB: whatever the state says, there is nothing to change there.
			name: "FDB for VXLAN only",
			kind: link.KindIPIP,
			want: Desired{Routes: want.Routes},
			st: state{
				device: ipipDevice(),
				routes: []route.Installed{{LinkIndex: testTunnel, Route: peerB}},
				fdb:    []neigh.FDB{{MAC: mac("0a:00:00:00:00:13"), Dst: ip("192.168.2.13")}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := diff(testTarget(tc.kind, tc.want), tc.st)
			checkLines(t, "device", c.device.diffs, tc.device)
			checkLines(t, "changes", strs(c.inOrder()), tc.changes)
			checkLines(t, "lines", c.lines(), tc.lines)
		})
	}
}

// split tells what costs pods connectivity from what only tidies up: an MTU below the computed one and
// entries of peers that left are the latter; an MTU above it, and anything missing, the former.
func TestChangesSplit(t *testing.T) {
	low, high := vxlanDevice(), vxlanDevice()
	low.MTU, high.MTU = 1400, 1500
	if d := diffDevice(testSpec(link.KindVXLAN), low); d.lowMTU != "device nlvx0: MTU 1400, want 1450" {
		t.Errorf("MTU below: %+v", d)
	}
	if d := diffDevice(testSpec(link.KindVXLAN), high); d.lowMTU != "" || len(d.diffs) != 1 {
		t.Errorf("MTU above: %+v", d)
	}
	ip := netip.MustParseAddr
	peer := route.Route{Dst: netip.MustParsePrefix("10.244.3.0/24"), GW: ip("192.168.2.13"), OnLink: true, Protocol: route.ProtoOverlay}
	gone := route.Route{Dst: netip.MustParsePrefix("10.244.2.0/24"), GW: ip("192.168.1.12"), OnLink: true, Protocol: route.ProtoOverlay}
	c := changes{
		device:      diffDevice(testSpec(link.KindVXLAN), low),
		staleRoutes: []routeDel{{route: route.Installed{LinkIndex: testTunnel, Route: gone}}},
		neighs:      []neighChange{{entry: neigh.Entry{IP: ip("192.168.2.13"), MAC: testVTEPMAC}}, {entry: neigh.Entry{IP: ip("192.168.1.12")}, remove: true}},
		fdb:         []fdbChange{{entry: neigh.FDB{MAC: testVTEPMAC, Dst: ip("192.168.1.12")}, remove: true}},
		newRoutes:   []routeAdd{{route: PeerRoute{Route: peer}, dev: "nlvx0"}},
	}
	missing, tidy := c.split()
	checkLines(t, "missing", missing, []string{
		"neighbour 192.168.2.13 lladdr " + testVTEPMAC.String(),
		"route 10.244.3.0/24 via 192.168.2.13 onlink proto 78 dev nlvx0",
	})
	checkLines(t, "tidy", tidy, []string{
		"device nlvx0: MTU 1400, want 1450",
		"remove route 10.244.2.0/24 via 192.168.1.12 onlink proto 78 (ifindex 10)",
		"remove neighbour 192.168.1.12",
		"remove fdb " + testVTEPMAC.String() + " dst 192.168.1.12",
	})
}
