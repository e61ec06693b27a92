package cluster

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/bgp/daemon"
)

// TestBGPPlan: the node mesh has one session per InternalIP on this node's network, carrying that
// address's family; a peer behind a router, without a route, or with this node's address is not meshed
// and the reason says so; nodeMesh false plans no session at all.
func TestBGPPlan(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"mode":"bgp","bgp":{"holdTime":9,"gracefulRestart":30}}`))
	if err != nil {
		t.Fatal(err)
	}
	noMesh, err := ParseConfig([]byte(`{"mode":"bgp","bgp":{"nodeMesh":false,"neighbors":[{"address":"10.0.0.254","asn":65000}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(a netip.Addr) (int, bool, error) {
		switch {
		case a == netip.MustParseAddr("10.9.9.9"):
			return 0, false, errors.New("network is unreachable")
		case netip.MustParsePrefix("10.0.0.0/24").Contains(a), netip.MustParsePrefix("fd00::/64").Contains(a):
			return 2, true, nil
		}
		return 2, false, nil
	}
	self := Node{Name: "me", InternalIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		cfg  *Config
		peer Node
		want []daemon.Neighbor
		why  string
	}{
		{name: "dual-stack peer on this network", cfg: cfg, peer: Node{Name: "a", InternalIPs: []netip.Addr{ip("10.0.0.2"), ip("fd00::2")}},
			want: []daemon.Neighbor{
				{Address: "10.0.0.2", ASN: 64512, HoldTime: 9, GracefulRestart: 30, AddressFamilies: []string{"ipv4"}},
				{Address: "fd00::2", ASN: 64512, HoldTime: 9, GracefulRestart: 30, AddressFamilies: []string{"ipv6"}},
			}},
		{name: "behind a router", cfg: cfg, peer: Node{Name: "b", InternalIPs: []netip.Addr{ip("10.1.0.2")}}, why: "behind a router"},
		{name: "unreachable", cfg: cfg, peer: Node{Name: "c", InternalIPs: []netip.Addr{ip("10.9.9.9")}}, why: "no route"},
		{name: "this node's address", cfg: cfg, peer: Node{Name: "d", InternalIPs: []netip.Addr{ip("10.0.0.1")}}, why: "this node's"},
		{name: "no address", cfg: cfg, peer: Node{Name: "e"}, why: "no InternalIP"},
		{name: "mesh off", cfg: noMesh, peer: Node{Name: "f", InternalIPs: []netip.Addr{ip("10.0.0.2")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBGPPath(tc.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			b.lookup, b.self = lookup, self
			got, why := b.plan(tc.peer)
			if len(got) != len(tc.want) {
				t.Fatalf("sessions %+v, want %+v (why %v)", got, tc.want, why)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Address != w.Address || g.ASN != w.ASN || g.HoldTime != w.HoldTime || g.GracefulRestart != w.GracefulRestart || strings.Join(g.AddressFamilies, ",") != strings.Join(w.AddressFamilies, ",") {
					t.Errorf("session %d: %+v, want %+v", i, g, w)
				}
			}
			if !strings.Contains(strings.Join(why, "; "), tc.why) {
				t.Errorf("why %q, want it to say %q", why, tc.why)
			}
		})
	}
}
