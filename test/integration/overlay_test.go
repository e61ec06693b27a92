package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/netloom/netloom/test/harness"
)

// TestOverlayBadInput: each bad configuration of the overlays fails ADD with a CNI error naming the key,
// leaves no veth and no lease on the node, and the runtime's DEL of the failed attachment succeeds.
func TestOverlayBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	cases := []struct {
		name   string
		plugin string
		extra  map[string]any
		self   []map[string]string // peers file entries
		naming []string
		code   uint
		// refused by parsing alone: DEL of the same config fails the same way (nothing was made)
		parseErr bool
	}{
		{name: "overlapping peer pod CIDRs", extra: map[string]any{"peers": []map[string]string{
			{"nodeIP": "10.77.1.12", "podCIDR": "10.244.2.0/24"}, {"nodeIP": "10.77.2.11", "podCIDR": "10.244.2.0/25"}}},
			parseErr: true, naming: []string{"peers[1].podCIDR", "overlaps"}},
		{name: "peer overlaps this node", extra: map[string]any{"peers": []map[string]string{
			{"nodeIP": "10.77.1.12", "podCIDR": "10.244.1.128/25"}}}, parseErr: true, naming: []string{"peers[0].podCIDR", "this node's podCIDR"}},
		{name: "pod CIDR outside the cluster", extra: map[string]any{"podCIDR": "10.99.1.0/24"}, parseErr: true, naming: []string{"podCIDR", "clusterCIDR 10.244.0.0/16"}},
		{name: "peer is this node", extra: map[string]any{"peers": []map[string]string{
			{"nodeIP": "10.77.1.11", "podCIDR": "10.244.9.0/24"}}}, naming: []string{"peers[0].nodeIP", "this node's own address"}},
		{name: "peers file lists this node with another pod CIDR", self: []map[string]string{
			{"nodeIP": "10.77.1.11", "podCIDR": "10.244.9.0/24"}}, naming: []string{"peersFile", "10.244.9.0/24"}},
		{name: "MTU above what the underlay carries", extra: map[string]any{"mtu": 1451}, naming: []string{"mtu", "at most 1450"}},
		{name: "ipip MTU above what the underlay carries", plugin: "ipip-overlay", extra: map[string]any{"mtu": 1481}, naming: []string{"mtu", "at most 1480"}},
		{name: "VNI out of range", extra: map[string]any{"vni": 1 << 24}, parseErr: true, naming: []string{"vni", "16777215"}},
		{name: "device name too long", extra: map[string]any{"device": "nlvx-far-too-long"}, parseErr: true, naming: []string{"device"}},
		{name: "no such underlay", extra: map[string]any{"underlayInterface": "nope0"}, naming: []string{"underlayInterface", "nope0"}},
		{name: "nodeIP not on the underlay", extra: map[string]any{"nodeIP": "10.77.1.99"}, naming: []string{"nodeIP", "10.77.1.99"}},
		{name: "ipip unknown mode", plugin: "ipip-overlay", extra: map[string]any{"mode": "sometimes"}, parseErr: true, naming: []string{"mode", "crossSubnet"}},
		{name: "ipip with a vxlan key", plugin: "ipip-overlay", extra: map[string]any{"vni": 5}, parseErr: true, naming: []string{"vni", "vxlan-overlay"}},
		{name: "IPAM outside the pod CIDR", extra: map[string]any{"ipam": map[string]any{"type": "host-local",
			"ranges": [][]map[string]string{{{"subnet": "10.250.0.0/24"}}}}}, naming: []string{"ipam", "outside podCIDR"}},
		{name: "bad JSON type", extra: map[string]any{"vni": "forty-two"}, parseErr: true, naming: []string{"vni"}},
	}
	n0 := c.Nodes[0]
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plugin := tc.plugin
			if plugin == "" {
				plugin = "vxlan-overlay"
			}
			dir := t.TempDir()
			p := map[string]any{
				"type": plugin, "podCIDR": "10.244.1.0/24", "clusterCIDR": "10.244.0.0/16",
				"device": fmt.Sprintf("nlbad%d", i),
				"ipam":   map[string]any{"type": "host-local", "dataDir": filepath.Join(dir, "ipam")},
			}
			if plugin == "vxlan-overlay" {
				p["vni"] = 100 + i
			}
			if tc.self != nil {
				b, _ := json.Marshal(tc.self)
				pf := filepath.Join(dir, "peers.json")
				if err := os.WriteFile(pf, b, 0o600); err != nil {
					t.Fatal(err)
				}
				p["peersFile"] = pf
			}
			for k, v := range tc.extra {
				p[k] = v
			}
			p["cniVersion"], p["name"] = "1.1.0", "bad"
			stdin, _ := json.Marshal(p)
			pod := harness.NewNetNS(t, "obad")
			env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-bad", "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
			var out []byte
			var err error
			_ = n0.Do(func() error {
				out, err = harness.RunPlugin(t, plugin, env, stdin)
				return nil
			})
			code := tc.code
			if code == 0 {
				code = 7
			}
			wantCNIError(t, out, err, code, tc.naming...)
			if v := hostVeths(t, n0); len(v) != 0 {
				t.Errorf("host veths left: %v", v)
			}
			if l := harness.Leases(t, filepath.Join(dir, "ipam"), "bad"); len(l) != 0 {
				t.Errorf("leases left: %v", l)
			}
			if o := pod.Run(t, "ip", "-o", "link", "show"); strings.Contains(o, "eth0") {
				t.Errorf("interface left in the pod: %s", o)
			}
			env["CNI_COMMAND"] = "DEL"
			_ = n0.Do(func() error {
				out, err = harness.RunPlugin(t, plugin, env, stdin)
				return nil
			})
			if tc.parseErr {
				wantCNIError(t, out, err, code, tc.naming...)
			} else if err != nil {
				t.Errorf("DEL of the failed attachment: %v: %s", err, out)
			}
		})
	}
}

// TestOverlayVXLANDirectRouting: with directRouting, the same-subnet peer is reached by a plain route
// through the underlay (the VXLAN device carries none of that traffic) and the peer behind the router
// through the tunnel.
func TestOverlayVXLANDirectRouting(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2, Remote: 1})
	o := newOverlayNet(t, c, "vxlan-overlay", map[string]any{"vni": 42, "directRouting": true})
	o.writePeers(0, 1, 2)
	pods := []*overlayPod{o.addPod(t, 0), o.addPod(t, 1), o.addPod(t, 2)}
	pingAll(t, pods)

	routes, _, fdb := nodeState(t, c.Nodes[0], vxlanDevice)
	if want := o.podCIDR(1) + " via " + o.nodeIP(1).String() + " dev eth0"; !strings.Contains(routes, want) {
		t.Errorf("node 0 lacks the direct route %q:\n%s", want, routes)
	}
	if want := o.podCIDR(2) + " via " + o.nodeIP(2).String() + " dev " + vxlanDevice; !strings.Contains(routes, want) {
		t.Errorf("node 0 lacks the tunnel route %q:\n%s", want, routes)
	}
	if strings.Contains(fdb, o.nodeIP(1).String()) {
		t.Errorf("node 0 has an FDB entry for its same-subnet peer:\n%s", fdb)
	}
	before := txPackets(t, c.Nodes[0], vxlanDevice)
	for range 3 {
		if err := harness.Ping(t, pods[0].NetNS, pods[1].ip.String()); err != nil {
			t.Fatal(err)
		}
	}
	if after := txPackets(t, c.Nodes[0], vxlanDevice); after != before {
		t.Errorf("pinging the same-subnet pod sent %d packets through %s", after-before, vxlanDevice)
	}
	if err := harness.Ping(t, pods[0].NetNS, pods[2].ip.String()); err != nil {
		t.Fatal(err)
	}
	if after := txPackets(t, c.Nodes[0], vxlanDevice); after == before {
		t.Errorf("pinging the pod behind the router sent nothing through %s", vxlanDevice)
	}
}

// txPackets reads a device's transmitted-packets counter on node n.
func txPackets(t *testing.T, n *harness.Node, dev string) uint64 {
	t.Helper()
	s := strings.TrimSpace(n.Run(t, "cat", "/sys/class/net/"+dev+"/statistics/tx_packets"))
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("tx_packets of %s: %q", dev, s)
	}
	return v
}

// TestOverlayVXLANFamilies runs vxlan-overlay with IPv6 pods and over an IPv6 underlay: pods on two
// nodes ping each other, and the pod MTU (underlay minus 50, or 70 over IPv6) is exact.
func TestOverlayVXLANFamilies(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, tc := range []struct {
		name            string
		v6Pods, v6Under bool
		mtu             int
	}{
		{"IPv6 pods over IPv4", true, false, 1450},
		{"IPv4 pods over IPv6", false, true, 1430},
		{"IPv6 pods over IPv6", true, true, 1430},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := harness.NewCluster(t, harness.ClusterSpec{Local: 1, Remote: 1})
			o := newOverlayNet(t, c, "vxlan-overlay", map[string]any{"vni": 42})
			o.v6Pods, o.v6Under = tc.v6Pods, tc.v6Under
			o.writePeers(0, 1)
			pods := []*overlayPod{o.addPod(t, 0), o.addPod(t, 1)}
			pingAll(t, pods)
			hdr := 28
			if tc.v6Pods {
				hdr = 48
			}
			if err := harness.PingDF(t, pods[0].NetNS, pods[1].ip.String(), tc.mtu-hdr); err != nil {
				t.Errorf("DF ping at the pod MTU %d: %v", tc.mtu, err)
			}
			if err := harness.PingDF(t, pods[0].NetNS, pods[1].ip.String(), tc.mtu-hdr+1); err == nil {
				t.Errorf("DF ping one byte above the pod MTU %d passed", tc.mtu)
			}
			for _, p := range pods {
				if err := o.checkPod(t, p); err != nil {
					t.Errorf("CHECK: %v", err)
				}
				o.delPod(t, p)
			}
		})
	}
}

// TestOverlayStatusAndGC: STATUS passes on a node and fails with code 50 once the underlay is down; GC
// releases the lease of an attachment the runtime no longer lists.
func TestOverlayStatusAndGC(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	o := newOverlayNet(t, c, "vxlan-overlay", map[string]any{"vni": 42, "underlayInterface": "eth0"})
	o.writePeers(0, 1)
	n0 := c.Nodes[0]
	if err := n0.Do(func() error { return o.rt.Status(t, o.conflist(0)) }); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	// STATUS only reads: the tunnel and the peer state wait for the first ADD.
	if out, _ := n0.Exec("ip", "-o", "link", "show", "type", "vxlan"); strings.TrimSpace(out) != "" {
		t.Errorf("STATUS changed the node: it made %s", out)
	}
	p := o.addPod(t, 0)
	if l := harness.Leases(t, o.dataDir(0), o.name); len(l) != 1 {
		t.Fatalf("leases after ADD: %v", l)
	}
	if err := n0.Do(func() error { return o.rt.GCOnly(t, o.conflist(0), nil) }); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if l := harness.Leases(t, o.dataDir(0), o.name); len(l) != 0 {
		t.Errorf("leases after GC with no valid attachment: %v", l)
	}
	o.delPod(t, p)
	n0.Run(t, "ip", "link", "set", "eth0", "down")
	err := n0.Do(func() error { return o.rt.Status(t, o.conflist(0)) })
	if err == nil || !strings.Contains(err.Error(), "down") {
		t.Errorf("STATUS with the underlay down: %v, want code 50 saying it is down", err)
	}
}

// TestOverlayConcurrentAdds: 16 pods added at once on one node (the first ADDs race to create the tunnel
// and program the peers) all succeed with distinct addresses and reach a pod on the other node; then
// all are deleted at once and nothing of theirs is left.
func TestOverlayConcurrentAdds(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	const n = 16
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	o := newOverlayNet(t, c, "vxlan-overlay", map[string]any{"vni": 42})
	o.writePeers(0, 1)
	far := o.addPod(t, 1)
	pods := make([]*overlayPod, n)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() { pods[i] = o.addPod(t, 0) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	seen := map[netip.Addr]bool{}
	for _, p := range pods {
		if seen[p.ip] {
			t.Errorf("address %s handed out twice", p.ip)
		}
		seen[p.ip] = true
		if err := harness.Ping(t, p.NetNS, far.ip.String()); err != nil {
			t.Errorf("pod %s -> %s: %v", p.ip, far.ip, err)
		}
	}
	for _, p := range pods {
		wg.Go(func() { o.delPod(t, p) })
	}
	wg.Wait()
	if v := hostVeths(t, c.Nodes[0]); len(v) != 0 {
		t.Errorf("host veths left: %v", v)
	}
	if l := harness.Leases(t, o.dataDir(0), o.name); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	routes, neigh, fdb := nodeState(t, c.Nodes[0], vxlanDevice)
	if strings.Count(routes, "\n") != 1 || strings.Count(neigh, "\n") != 1 || strings.Count(fdb, "\n") != 1 {
		t.Errorf("peer state after concurrent ADDs is not exactly one peer's:\n%s%s%s", routes, neigh, fdb)
	}
}

// A DEL whose IPAM step fails still removes the pod's masquerade rules (and its veth), and says what
// failed; the runtime's retry then releases the lease.
func TestOverlayDelKeepsGoing(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	o := newOverlayNet(t, c, "vxlan-overlay", map[string]any{"vni": 43, "ipMasq": true, "ipMasqBackend": "nftables"})
	o.writePeers(0, 1)
	p := o.addPod(t, 0)
	n0 := c.Nodes[0]
	rules := func() string {
		out, _ := n0.Exec("nft", "list", "ruleset")
		var mine []string
		for line := range strings.SplitSeq(out, "\n") {
			if strings.Contains(line, p.id) {
				mine = append(mine, strings.TrimSpace(line))
			}
		}
		return strings.Join(mine, "\n")
	}
	if rules() == "" {
		t.Fatal("no masquerade rule names the pod after ADD")
	}
	broken := o.pluginConf(0)
	broken["ipam"] = map[string]any{"type": "no-such-ipam"}
	list, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": o.name, "plugins": []any{broken}})
	err := n0.Do(func() error { return o.rt.Del(t, list, p.id, p.Path, "eth0", nil) })
	if err == nil || !strings.Contains(err.Error(), "no-such-ipam") {
		t.Errorf("DEL with a missing IPAM plugin: %v, want an error naming it", err)
	}
	if r := rules(); r != "" {
		t.Errorf("the failed IPAM step stopped the DEL before the masquerade rules:\n%s", r)
	}
	if l := harness.Leases(t, o.dataDir(0), o.name); len(l) != 1 {
		t.Errorf("leases after the failed DEL: %v, want the pod's still there", l)
	}
	o.delPod(t, p)
	if l := harness.Leases(t, o.dataDir(0), o.name); len(l) != 0 {
		t.Errorf("leases after the retried DEL: %v", l)
	}
}
