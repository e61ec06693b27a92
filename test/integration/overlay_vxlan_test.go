package integration

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/overlay"
	"github.com/netloom/netloom/test/harness"
)

// vxlanDevice is the tunnel device of the test networks (VNI 42).
const vxlanDevice = "nlvx.42"

// TestOverlayVXLAN runs vxlan-overlay on four nodes, three on one segment and one behind a router:
// pods on every node reach pods on every other, the pod MTU is exact, pod-to-pod traffic keeps its
// source while traffic leaving the cluster is masqueraded, a peer leaving the peers file is removed by
// `netloom overlay sync` (exactly its entries), a rebuilt node is re-learned, and DEL of every pod leaves
// nothing of theirs.
func TestOverlayVXLAN(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 3, Remote: 1})
	o := newOverlayNet(t, c, "vxlan-overlay", map[string]any{"vni": 42, "ipMasq": true})
	o.writePeers(0, 1, 2, 3)

	pods := []*overlayPod{o.addPod(t, 0), o.addPod(t, 0), o.addPod(t, 1), o.addPod(t, 2), o.addPod(t, 3)}
	pingAll(t, pods)
	if t.Failed() {
		for i, n := range c.Nodes {
			r, nb, f := nodeState(t, n, vxlanDevice)
			t.Logf("node %d:\n%s%s%s", i, r, nb, f)
		}
		t.FailNow()
	}

	t.Run("kernel state", func(t *testing.T) {
		n0 := c.Nodes[0]
		dev := n0.Run(t, "ip", "-d", "link", "show", vxlanDevice)
		for _, want := range []string{"vxlan id 42", "dstport 4789", "nolearning", "mtu 1450", "local " + o.nodeIP(0).String(),
			" udpcsum", "noudp6zerocsumtx", "noudp6zerocsumrx"} {
			if !strings.Contains(dev, want) {
				t.Errorf("device lacks %q:\n%s", want, dev)
			}
		}
		// Pod traffic stays in super-packets through the tunnel and is aggregated on receive.
		if off := harness.MissingOffloads(t, n0.NetNS, vxlanDevice, "rx-gro", "tx-generic-segmentation", "tx-tcp-segmentation", "tx-checksum-ip-generic"); len(off) > 0 {
			t.Errorf("%s: offloads not on: %s", vxlanDevice, strings.Join(off, ", "))
		}
		routes, neigh, fdb := nodeState(t, n0, vxlanDevice)
		for i := 1; i < 4; i++ {
			mac := overlay.VTEPMAC(o.nodeIP(i)).String()
			for what, want := range map[string]string{
				"route": o.podCIDR(i) + " via " + o.nodeIP(i).String() + " dev " + vxlanDevice,
				"neigh": o.nodeIP(i).String() + " lladdr " + mac + " PERMANENT",
				"fdb":   mac + " dst " + o.nodeIP(i).String(),
			} {
				if have := map[string]string{"route": routes, "neigh": neigh, "fdb": fdb}[what]; !strings.Contains(have, want) {
					t.Errorf("node 0 lacks %s %q:\n%s", what, want, have)
				}
			}
		}
		if strings.Contains(routes, o.podCIDR(0)) {
			t.Errorf("node 0 routes its own pod CIDR through the tunnel:\n%s", routes)
		}
		if got := n0.Run(t, "sysctl", "-n", "net.ipv4.ip_forward"); strings.TrimSpace(got) != "1" {
			t.Errorf("node 0: ip_forward = %q after ADD", got)
		}
	})

	t.Run("MTU", func(t *testing.T) {
		// 1450 - 28 bytes of IPv4 and ICMP headers: the largest unfragmented ping passes, one more byte is
		// refused at the pod, never fragmented.
		if err := harness.PingDF(t, pods[0].NetNS, pods[2].ip.String(), 1422); err != nil {
			t.Errorf("DF ping at the pod MTU: %v", err)
		}
		if err := harness.PingDF(t, pods[0].NetNS, pods[2].ip.String(), 1423); err == nil {
			t.Errorf("DF ping one byte above the pod MTU passed")
		}
		if err := harness.PingDF(t, pods[0].NetNS, pods[4].ip.String(), 1422); err != nil {
			t.Errorf("DF ping at the pod MTU through the router: %v", err)
		}
	})

	t.Run("masquerade only outside the cluster", func(t *testing.T) {
		harness.Serve(t, &pods[2].NetNS, "tcp", 7001, "$SOCAT_PEERADDR")
		got, err := harness.Dial(&pods[0].NetNS, "tcp", pods[2].ip, 7001, 0)
		if err != nil || peerAddr(got) != pods[0].ip {
			t.Errorf("pod-to-pod: server saw %q (err %v), want the client pod's %s", got, err, pods[0].ip)
		}
		harness.Serve(t, &c.Router, "tcp", 7002, "$SOCAT_PEERADDR")
		got, err = harness.Dial(&pods[0].NetNS, "tcp", c.Nodes[0].Gateway, 7002, 0)
		if err != nil || peerAddr(got) != o.nodeIP(0) {
			t.Errorf("pod to outside: server saw %q (err %v), want node 0's %s", got, err, o.nodeIP(0))
		}
	})

	t.Run("TCP", func(t *testing.T) {
		bps, err := harness.Iperf3(t, pods[2].NetNS, pods[0].NetNS, pods[2].ip.String(), 1)
		if err != nil || bps <= 0 {
			t.Fatalf("iperf3 pod to pod across nodes: %v bits/s, %v", bps, err)
		}
		t.Logf("iperf3 pod->pod over VXLAN: %.2f Gbit/s", bps/1e9)
	})

	t.Run("CHECK", func(t *testing.T) {
		for _, p := range pods {
			if err := o.checkPod(t, p); err != nil {
				t.Errorf("CHECK pod on node %d: %v", p.node, err)
			}
		}
	})

	t.Run("peer leaves and returns", func(t *testing.T) {
		before, _, _ := nodeState(t, c.Nodes[0], vxlanDevice)
		o.writePeers(0, 1, 3)
		// Until the sync, CHECK reports the stale peer.
		if err := o.checkPod(t, pods[0]); err == nil || !strings.Contains(err.Error(), o.podCIDR(2)) {
			t.Errorf("CHECK with a peer gone from the file: %v, want it to name %s", err, o.podCIDR(2))
		}
		if out, err := o.sync(t, 0, "--dry-run"); err == nil || !strings.Contains(out, o.podCIDR(2)) {
			t.Errorf("sync --dry-run: %v: %s, want exit 1 naming %s", err, out, o.podCIDR(2))
		}
		out, err := o.sync(t, 0)
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		t.Logf("sync:\n%s", out)
		routes, neigh, fdb := nodeState(t, c.Nodes[0], vxlanDevice)
		gone := o.nodeIP(2).String()
		if strings.Contains(routes, o.podCIDR(2)) || strings.Contains(neigh, gone+" ") || strings.Contains(fdb, "dst "+gone+" ") {
			t.Errorf("node 2's entries survived the sync:\n%s%s%s", routes, neigh, fdb)
		}
		for _, line := range strings.Split(strings.TrimSpace(before), "\n") {
			if !strings.Contains(line, o.podCIDR(2)) && !strings.Contains(routes, line) {
				t.Errorf("sync removed %q, which belongs to a remaining peer", line)
			}
		}
		if out, err := o.sync(t, 0, "--dry-run"); err != nil || out != "" {
			t.Errorf("sync --dry-run after sync: %v: %q, want no differences", err, out)
		}
		if err := harness.Ping(t, pods[0].NetNS, pods[3].ip.String()); err == nil {
			t.Errorf("pod on node 0 still reaches node 2's pod after node 2 left")
		}
		if err := harness.Ping(t, pods[0].NetNS, pods[4].ip.String()); err != nil {
			t.Errorf("pod on node 0 -> node 3 after node 2 left: %v", err)
		}
		o.writePeers(0, 1, 2, 3)
		if _, err := o.sync(t, 0); err != nil {
			t.Fatalf("sync: %v", err)
		}
		pingAll(t, pods)
	})

	t.Run("node restart", func(t *testing.T) {
		c.RestartNode(t, 3)
		// The kubelet recreates the node's pods: DEL of the old one (its veth died with the node), ADD of
		// a new one, which brings the tunnel and the peers back.
		o.delPod(t, pods[4])
		pods[4] = o.addPod(t, 3)
		pingAll(t, pods)
	})

	t.Run("DEL leaves nothing", func(t *testing.T) { o.delAllLeavesNothing(t, pods, vxlanDevice) })
}
