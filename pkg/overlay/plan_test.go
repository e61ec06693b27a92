package overlay

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
)

// planNetwork is a Network as Resolve would make it, without a kernel: the configuration parsed from
// json, this node at nodeAddr (address/underlay prefix length), the inline peers as the peer set.
func planNetwork(t *testing.T, kind Kind, json, nodeAddr string) *Network {
	t.Helper()
	n, err := Parse(kind, []byte(json))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	p := netip.MustParsePrefix(nodeAddr)
	return &Network{Conf: n, NodeIP: p.Addr(), Subnet: p.Masked(), Peers: n.peers}
}

// render turns a plan into lines that read like `ip route` / `ip neigh` / `bridge fdb`.
func render(d Desired) (addrs, routes, neighs, fdb []string) {
	for _, a := range d.TunnelAddrs {
		addrs = append(addrs, a.String())
	}
	for _, r := range d.Routes {
		s := r.Route.String()
		if r.Direct {
			s += " direct"
		}
		routes = append(routes, s)
	}
	for _, e := range d.Neighs {
		neighs = append(neighs, e.String())
	}
	for _, f := range d.FDB {
		fdb = append(fdb, f.String())
	}
	return addrs, routes, neighs, fdb
}

func TestPlan(t *testing.T) {
	// Two peers, the first on this node's underlay subnet with its own VTEP MAC, the second behind a
	// router with a derived one. Listed out of pod-CIDR order, so the routes must come back sorted.
	const v4peers = `,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.3.0/24","vtepMAC":"0a:00:00:00:00:0b"},{"nodeIP":"192.168.2.12","podCIDR":"10.244.2.0/24"}]`
	const v6pods = `,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"fd00:10:244:3::/64"},{"nodeIP":"192.168.2.12","podCIDR":"fd00:10:244:2::/64"}]`
	v6mac11 := VTEPMAC(netip.MustParseAddr("2001:db8:1::11")).String()
	for _, tc := range []struct {
		name                        string
		kind                        Kind
		json                        string
		node                        string
		addrs, routes, neighs, fdbs []string
	}{
		{
			name:   "vxlan always",
			kind:   VXLAN,
			json:   vx(v4peers),
			node:   "192.168.1.10/24",
			addrs:  []string{"10.244.1.0/32"},
			routes: []string{"10.244.2.0/24 via 192.168.2.12 onlink proto 78", "10.244.3.0/24 via 192.168.1.11 onlink proto 78"},
			neighs: []string{"192.168.1.11 lladdr 0a:00:00:00:00:0b", "192.168.2.12 lladdr 0e:4c:c0:a8:02:0c"},
			fdbs:   []string{"0a:00:00:00:00:0b dst 192.168.1.11", "0e:4c:c0:a8:02:0c dst 192.168.2.12"},
		},
		{
			name:   "vxlan directRouting",
			kind:   VXLAN,
			json:   vx(`,"directRouting":true` + v4peers),
			node:   "192.168.1.10/24",
			addrs:  []string{"10.244.1.0/32"},
			routes: []string{"10.244.2.0/24 via 192.168.2.12 onlink proto 78", "10.244.3.0/24 via 192.168.1.11 proto 78 direct"},
			neighs: []string{"192.168.2.12 lladdr 0e:4c:c0:a8:02:0c"},
			fdbs:   []string{"0e:4c:c0:a8:02:0c dst 192.168.2.12"},
		},
		{
			name:   "vxlan directRouting, wide underlay subnet",
			kind:   VXLAN,
			json:   vx(`,"directRouting":true` + v4peers),
			node:   "192.168.1.10/16",
			addrs:  []string{"10.244.1.0/32"},
			routes: []string{"10.244.2.0/24 via 192.168.2.12 proto 78 direct", "10.244.3.0/24 via 192.168.1.11 proto 78 direct"},
		},
		{
			name:   "vxlan IPv6 pods over IPv4 underlay",
			kind:   VXLAN,
			json:   cfg("vxlan-overlay", "fd00:10:244:1::/64", v6pods),
			node:   "192.168.1.10/24",
			addrs:  []string{"fd00:10:244:1::/128"},
			routes: []string{"fd00:10:244:2::/64 via fd00:10:244:2:: onlink proto 78", "fd00:10:244:3::/64 via fd00:10:244:3:: onlink proto 78"},
			neighs: []string{"fd00:10:244:3:: lladdr 0e:4c:c0:a8:01:0b", "fd00:10:244:2:: lladdr 0e:4c:c0:a8:02:0c"},
			fdbs:   []string{"0e:4c:c0:a8:01:0b dst 192.168.1.11", "0e:4c:c0:a8:02:0c dst 192.168.2.12"},
		},
		{
			// A direct route cannot cross families: the underlay has no IPv6 next hop to give.
			name:   "vxlan IPv6 pods over IPv4 underlay, directRouting",
			kind:   VXLAN,
			json:   cfg("vxlan-overlay", "fd00:10:244:1::/64", `,"directRouting":true`+v6pods),
			node:   "192.168.1.10/24",
			addrs:  []string{"fd00:10:244:1::/128"},
			routes: []string{"fd00:10:244:2::/64 via fd00:10:244:2:: onlink proto 78", "fd00:10:244:3::/64 via fd00:10:244:3:: onlink proto 78"},
			neighs: []string{"fd00:10:244:3:: lladdr 0e:4c:c0:a8:01:0b", "fd00:10:244:2:: lladdr 0e:4c:c0:a8:02:0c"},
			fdbs:   []string{"0e:4c:c0:a8:01:0b dst 192.168.1.11", "0e:4c:c0:a8:02:0c dst 192.168.2.12"},
		},
		{
			name:   "vxlan IPv6 everywhere",
			kind:   VXLAN,
			json:   cfg("vxlan-overlay", "fd00:10:244:1::/64", `,"peers":[{"nodeIP":"2001:db8:1::11","podCIDR":"fd00:10:244:2::/64"}]`),
			node:   "2001:db8:1::10/64",
			addrs:  []string{"fd00:10:244:1::/128"},
			routes: []string{"fd00:10:244:2::/64 via 2001:db8:1::11 onlink proto 78"},
			neighs: []string{"2001:db8:1::11 lladdr " + v6mac11},
			fdbs:   []string{v6mac11 + " dst 2001:db8:1::11"},
		},
		{
			name:  "vxlan no peers",
			kind:  VXLAN,
			json:  vx(""),
			node:  "192.168.1.10/24",
			addrs: []string{"10.244.1.0/32"},
		},
		{
			name:   "ipip always",
			kind:   IPIP,
			json:   ipip(`,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.3.0/24"},{"nodeIP":"192.168.2.12","podCIDR":"10.244.2.0/24"}]`),
			node:   "192.168.1.10/24",
			addrs:  []string{"10.244.1.0/32"},
			routes: []string{"10.244.2.0/24 via 192.168.2.12 onlink proto 78", "10.244.3.0/24 via 192.168.1.11 onlink proto 78"},
		},
		{
			name:   "ipip crossSubnet",
			kind:   IPIP,
			json:   ipip(`,"mode":"crossSubnet","peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.3.0/24"},{"nodeIP":"192.168.2.12","podCIDR":"10.244.2.0/24"}]`),
			node:   "192.168.1.10/24",
			addrs:  []string{"10.244.1.0/32"},
			routes: []string{"10.244.2.0/24 via 192.168.2.12 onlink proto 78", "10.244.3.0/24 via 192.168.1.11 proto 78 direct"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nw := planNetwork(t, tc.kind, tc.json, tc.node)
			d := nw.Plan()
			addrs, routes, neighs, fdbs := render(d)
			for _, c := range []struct {
				what      string
				got, want []string
			}{{"tunnel addresses", addrs, tc.addrs}, {"routes", routes, tc.routes}, {"neighbours", neighs, tc.neighs}, {"fdb", fdbs, tc.fdbs}} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s:\n got %q\nwant %q", c.what, c.got, c.want)
				}
			}
			for _, r := range d.Routes {
				if r.Protocol != 78 {
					t.Errorf("route %s has protocol %d, want 78", r.Route, r.Protocol)
				}
			}
			if again := nw.Plan(); !slices.EqualFunc(again.Routes, d.Routes, func(a, b PeerRoute) bool { return a == b }) {
				t.Errorf("Plan is not deterministic: %v then %v", d.Routes, again.Routes)
			}
		})
	}
}

// TestPlanRoutesSorted checks the order over many peers listed in reverse, including pod CIDRs of
// different lengths.
func TestPlanRoutesSorted(t *testing.T) {
	nw := planNetwork(t, IPIP, ipip(""), "192.168.1.10/24")
	for i := 20; i >= 2; i-- {
		bits := 24
		if i%2 == 0 {
			bits = 25
		}
		nw.Peers = append(nw.Peers, Peer{
			NodeIP:  netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + i)}),
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), bits),
		})
	}
	d := nw.Plan()
	if len(d.Routes) != len(nw.Peers) {
		t.Fatalf("%d routes for %d peers", len(d.Routes), len(nw.Peers))
	}
	if !slices.IsSortedFunc(d.Routes, func(a, b PeerRoute) int { return a.Dst.Addr().Compare(b.Dst.Addr()) }) {
		t.Errorf("routes not sorted: %v", d.Routes)
	}
}

func TestVTEPMAC(t *testing.T) {
	for ip, want := range map[string]string{
		"192.168.1.11": "0e:4c:c0:a8:01:0b",
		"10.0.0.1":     "0e:4c:0a:00:00:01",
		"0.0.0.0":      "0e:4c:00:00:00:00",
	} {
		if got := VTEPMAC(netip.MustParseAddr(ip)).String(); got != want {
			t.Errorf("VTEPMAC(%s) = %s, want %s", ip, got, want)
		}
	}

	a, b := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8::11")
	ma, mb := VTEPMAC(a), VTEPMAC(b)
	for _, m := range [][]byte{ma, mb} {
		if len(m) != 6 {
			t.Fatalf("IPv6 VTEP MAC %x is %d bytes", m, len(m))
		}
		if m[0]&1 != 0 || m[0]&2 == 0 {
			t.Errorf("IPv6 VTEP MAC %x is not locally administered unicast", m)
		}
		if m[0] != 0x0e || m[1] != 0x4d {
			t.Errorf("IPv6 VTEP MAC %x does not start 0e:4d", m)
		}
	}
	if !bytes.Equal(ma, VTEPMAC(a)) {
		t.Errorf("VTEPMAC(%s) not deterministic: %s then %s", a, ma, VTEPMAC(a))
	}
	if bytes.Equal(ma, mb) {
		t.Errorf("VTEPMAC(%s) == VTEPMAC(%s) == %s", a, b, ma)
	}
	if bytes.Equal(ma, VTEPMAC(netip.MustParseAddr("192.168.1.11"))) {
		t.Errorf("IPv6 and IPv4 VTEP MACs collide")
	}
}
