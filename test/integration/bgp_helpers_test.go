package integration

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/test/harness"
)

// bgpNode is a node of a BGP test: pods on a bridge with host-local addresses from its pod CIDR,
// announced by bgp-route through speaker.
type bgpNode struct {
	*harness.Node
	podCIDR netip.Prefix
	name    string // the network's name
	dir     string
	speaker string
	rt      *harness.Runtime
	extra   map[string]any // more bgp-route keys
}

func newBGPNode(t *testing.T, n *harness.Node, podCIDR string) *bgpNode {
	return &bgpNode{Node: n, podCIDR: netip.MustParsePrefix(podCIDR), name: harness.Unique("bgp"), dir: t.TempDir(), rt: harness.NewRuntime(t)}
}

func (b *bgpNode) stateDir() string { return filepath.Join(b.dir, "bgp-state") }

// conflist is bridge + host-local + bgp-route, as in conflist-examples/bridge-bgp-route.conflist.
func (b *bgpNode) conflist() []byte {
	route := map[string]any{"type": "bgp-route", "speaker": b.speaker, "stateDir": b.stateDir()}
	for k, v := range b.extra {
		route[k] = v
	}
	out, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": b.name,
		"plugins": []any{
			map[string]any{"type": "bridge", "bridge": "nlbgp0", "isGateway": true, "isDefaultGateway": true,
				"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(b.dir, "ipam"),
					"ranges": [][]map[string]string{{{"subnet": b.podCIDR.String()}}}}},
			route,
		},
	})
	return out
}

// netloomdConfig is a netloomd configuration for the node: its address as router ID, its pod CIDR
// originated, short timers towards neighbors.
func (b *bgpNode) netloomdConfig(asn uint32, neighbors ...map[string]any) map[string]any {
	return map[string]any{
		"bgp": map[string]any{
			"asn": asn, "routerID": b.Addr.Addr().String(), "neighbors": neighbors,
			"originate": []string{b.podCIDR.String()},
		},
		"stateDir": b.stateDir(),
	}
}

func neighbor(addr netip.Addr, asn uint32, extra ...any) map[string]any {
	n := map[string]any{"address": addr.String(), "asn": asn, "holdTime": 3}
	for i := 0; i+1 < len(extra); i += 2 {
		n[extra[i].(string)] = extra[i+1]
	}
	return n
}

type bgpPod struct {
	harness.NetNS
	id string
	ip netip.Addr
}

// add attaches a pod on the node and returns it; the error is libcni's.
func (b *bgpNode) add(t *testing.T) (*bgpPod, error) {
	t.Helper()
	p := &bgpPod{NetNS: harness.NewNetNS(t, "bpod"), id: harness.Unique("ctr")}
	var res *types100.Result
	err := b.Do(func() error {
		r, err := b.rt.Add(t, b.conflist(), p.id, p.Path, "eth0", nil)
		if err != nil {
			return err
		}
		res, err = types100.NewResultFromResult(r)
		return err
	})
	if err != nil {
		return p, err
	}
	p.ip, _ = netip.AddrFromSlice(res.IPs[0].Address.IP)
	p.ip = p.ip.Unmap()
	return p, nil
}

func (b *bgpNode) mustAdd(t *testing.T) *bgpPod {
	t.Helper()
	p, err := b.add(t)
	if err != nil {
		t.Fatalf("ADD on %s: %v", b.Name, err)
	}
	return p
}

func (b *bgpNode) del(t *testing.T, p *bgpPod) error {
	return b.Do(func() error { return b.rt.Del(t, b.conflist(), p.id, p.Path, "eth0", nil) })
}

func (b *bgpNode) check(t *testing.T, p *bgpPod) error {
	return b.Do(func() error { return b.rt.Check(t, b.conflist(), p.id, p.Path, "eth0", nil) })
}

func (b *bgpNode) status(t *testing.T) error {
	return b.Do(func() error { return b.rt.Status(t, b.conflist()) })
}

// host32 is a pod address as the host prefix bgp-route announces.
func host32(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

// bridgeSubnet gives node n a bridge holding gw (e.g. "10.247.2.1/24"): a pod subnet of a peer that
// pods elsewhere can ping, without running pods there.
func bridgeSubnet(t *testing.T, n *harness.Node, gw string) {
	t.Helper()
	for _, c := range [][]string{
		{"ip", "link", "add", "peerpods", "type", "bridge"},
		{"ip", "addr", "add", gw, "dev", "peerpods"},
		{"ip", "link", "set", "peerpods", "up"},
	} {
		n.Run(t, c...)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// peerSubnet is node B's own subnet in the two-node BGP tests, on a bridge holding peerGateway.
const (
	peerSubnet  = "10.247.2.0/24"
	peerGateway = "10.247.2.1"
)

// peerDaemon starts a BGP daemon (harness.StartBIRD or StartFRR) on a node with a rendered config.
type peerDaemon struct {
	render func(harness.BGPSpec) (string, error)
	start  func(testing.TB, harness.NetNS, string) *harness.Daemon
}

var (
	birdPeer = peerDaemon{harness.BIRDConfig, harness.StartBIRD}
	frrPeer  = peerDaemon{harness.FRRConfig, harness.StartFRR}
)

// twoNodes builds the two-node BGP topology: node A with netloomd (AS 65001) for pods on
// 10.246.1.0/24, node B with the peer daemon (AS 65002, exporting to its kernel) originating
// peerSubnet, both with 3 s hold times. It returns once A's kernel routes peerSubnet via B with
// protocol 79.
func twoNodes(t *testing.T, peer peerDaemon) (a *bgpNode, b *harness.Node, pd, d *harness.Daemon) {
	t.Helper()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	a = newBGPNode(t, c.Nodes[0], "10.246.1.0/24")
	b = c.Nodes[1]
	bridgeSubnet(t, b, peerGateway+"/24")
	cfg, err := peer.render(harness.BGPSpec{
		RouterID: b.Addr.Addr(), ASN: 65002, ExportToKernel: true,
		Originate: []netip.Prefix{mustPrefix(peerSubnet)},
		Neighbors: []harness.BGPNeighbor{{Address: a.Addr.Addr(), ASN: 65001, HoldTime: 3 * time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pd = peer.start(t, b.NetNS, cfg)
	d = harness.StartNetloomd(t, a.NetNS, a.netloomdConfig(65001, neighbor(b.Addr.Addr(), 65002)))
	a.speaker = d.Speaker()
	pd.WaitSessionUp(t, a.Addr.Addr(), 20*time.Second)
	harness.WaitRoute(t, a.NetNS, peerSubnet, true, 10*time.Second)
	if r := a.Run(t, "ip", "route", "show", peerSubnet); !strings.Contains(r, "via "+b.Addr.Addr().String()) || !strings.Contains(r, "proto 79") {
		t.Errorf("A's route to B's subnet: %q, want via %s proto 79", r, b.Addr.Addr())
	}
	return a, b, pd, d
}
