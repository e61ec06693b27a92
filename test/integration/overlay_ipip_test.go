package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/netloom/netloom/test/harness"
)

// This machine's kernel has no ipip: these tests skip here and run in the VM lane (test/vm), whose
// Debian kernel loads the module on demand. Their names start with TestVM so `make test-vm` runs them.

// ipipDevice is the tunnel device ipip-overlay makes when "device" is not set.
const ipipDevice = "nlipip"

// ipipPodMTU is the pod MTU over the cluster's 1500-byte underlay: minus the outer IPv4 header.
const ipipPodMTU = 1500 - 20

// icmpV4Headers is what a ping adds to its payload: the IPv4 and ICMP headers.
const icmpV4Headers = 28

// requireIPIP lets t run only where the kernel makes ipip links: it skips on this machine, naming the VM
// lane, and fails inside the VM if the module will not load.
func requireIPIP(t *testing.T) {
	t.Helper()
	harness.RequireRoot(t)
	harness.RequireKernelFeature(t, "ipip", harness.LinkKindAvailable(t, "ipip", "local", "192.0.2.1"))
}

// routeLine returns the line of routes (as `ip route show` prints them) for dst, or "".
func routeLine(routes, dst string) string {
	for _, line := range strings.Split(routes, "\n") {
		if strings.HasPrefix(line, dst+" ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestVMIPIPOverlay runs ipip-overlay in mode always on four nodes, three on one segment and one behind
// a router: every pod reaches every other, each peer's pod CIDR is routed onlink through the one NBMA
// tunnel, the pod MTU is exact, CHECK passes, TCP flows, a peer leaving the peers file is removed by
// `netloom overlay sync` (exactly its route), and DEL of every pod leaves nothing of theirs.
func TestVMIPIPOverlay(t *testing.T) {
	requireIPIP(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 3, Remote: 1})
	o := newOverlayNet(t, c, "ipip-overlay", map[string]any{"mode": "always"})
	o.writePeers(0, 1, 2, 3)

	pods := []*overlayPod{o.addPod(t, 0), o.addPod(t, 0), o.addPod(t, 1), o.addPod(t, 2), o.addPod(t, 3)}
	pingAll(t, pods)
	if t.Failed() {
		for i, n := range c.Nodes {
			r, _, _ := nodeState(t, n, ipipDevice)
			t.Logf("node %d:\n%s", i, r)
		}
		t.FailNow()
	}

	t.Run("kernel state", func(t *testing.T) {
		n0 := c.Nodes[0]
		dev := n0.Run(t, "ip", "-d", "link", "show", ipipDevice)
		for _, want := range []string{"link/ipip ", "remote any", "local " + o.nodeIP(0).String(), fmt.Sprintf("mtu %d", ipipPodMTU)} {
			if !strings.Contains(dev, want) {
				t.Errorf("device lacks %q:\n%s", want, dev)
			}
		}
		routes, _, _ := nodeState(t, n0, ipipDevice)
		for i := 1; i < 4; i++ {
			line := routeLine(routes, o.podCIDR(i))
			if !strings.Contains(line, "via "+o.nodeIP(i).String()+" dev "+ipipDevice) || !strings.Contains(line, "onlink") {
				t.Errorf("node 0: route to %s is %q, want via %s dev %s onlink:\n%s", o.podCIDR(i), line, o.nodeIP(i), ipipDevice, routes)
			}
		}
		if routeLine(routes, o.podCIDR(0)) != "" {
			t.Errorf("node 0 routes its own pod CIDR through the tunnel:\n%s", routes)
		}
	})

	t.Run("MTU", func(t *testing.T) {
		// The largest unfragmented ping passes, one more byte is refused at the pod, never fragmented.
		largest := ipipPodMTU - icmpV4Headers
		if err := harness.PingDF(t, pods[0].NetNS, pods[2].ip.String(), largest); err != nil {
			t.Errorf("DF ping at the pod MTU: %v", err)
		}
		if err := harness.PingDF(t, pods[0].NetNS, pods[2].ip.String(), largest+1); err == nil {
			t.Errorf("DF ping one byte above the pod MTU passed")
		}
		if err := harness.PingDF(t, pods[0].NetNS, pods[4].ip.String(), largest); err != nil {
			t.Errorf("DF ping at the pod MTU through the router: %v", err)
		}
	})

	t.Run("CHECK", func(t *testing.T) {
		for _, p := range pods {
			if err := o.checkPod(t, p); err != nil {
				t.Errorf("CHECK pod on node %d: %v", p.node, err)
			}
		}
	})

	t.Run("TCP", func(t *testing.T) {
		bps, err := harness.Iperf3(t, pods[2].NetNS, pods[0].NetNS, pods[2].ip.String(), 1)
		if err != nil || bps <= 0 {
			t.Fatalf("iperf3 pod to pod across nodes: %v bits/s, %v", bps, err)
		}
		t.Logf("iperf3 pod->pod over IP-in-IP: %.1f Mbit/s", bps/1e6)
	})

	t.Run("peer leaves", func(t *testing.T) {
		o.writePeers(0, 1, 3)
		out, err := o.sync(t, 0)
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		t.Logf("sync:\n%s", out)
		routes, _, _ := nodeState(t, c.Nodes[0], ipipDevice)
		if line := routeLine(routes, o.podCIDR(2)); line != "" {
			t.Errorf("node 2's route survived the sync: %q", line)
		}
		for _, i := range []int{1, 3} {
			if line := routeLine(routes, o.podCIDR(i)); !strings.Contains(line, "via "+o.nodeIP(i).String()+" dev "+ipipDevice) {
				t.Errorf("sync removed or changed the route to remaining peer %d's %s: %q:\n%s", i, o.podCIDR(i), line, routes)
			}
		}
		if err := harness.Ping(t, pods[0].NetNS, pods[4].ip.String()); err != nil {
			t.Errorf("pod on node 0 -> node 3 after node 2 left: %v", err)
		}
	})

	t.Run("DEL leaves nothing", func(t *testing.T) { o.delAllLeavesNothing(t, pods, ipipDevice) })
}

// TestVMIPIPOverlayCrossSubnet runs ipip-overlay in mode crossSubnet on two nodes of one segment and one
// behind the router: the same-subnet peer is routed directly over the underlay, unencapsulated, the
// remote one through the tunnel, and every pod reaches every other.
func TestVMIPIPOverlayCrossSubnet(t *testing.T) {
	requireIPIP(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2, Remote: 1})
	o := newOverlayNet(t, c, "ipip-overlay", map[string]any{"mode": "crossSubnet"})
	o.writePeers(0, 1, 2)

	pods := []*overlayPod{o.addPod(t, 0), o.addPod(t, 1), o.addPod(t, 2)}
	n0 := c.Nodes[0]
	routes, _, _ := nodeState(t, n0, ipipDevice)
	if line := routeLine(routes, o.podCIDR(1)); !strings.Contains(line, "via "+o.nodeIP(1).String()+" dev "+n0.Iface) {
		t.Errorf("node 0: route to same-subnet %s is %q, want via %s dev %s (proto 78):\n%s", o.podCIDR(1), line, o.nodeIP(1), n0.Iface, routes)
	}
	if line := routeLine(routes, o.podCIDR(2)); !strings.Contains(line, "via "+o.nodeIP(2).String()+" dev "+ipipDevice) || !strings.Contains(line, "onlink") {
		t.Errorf("node 0: route to remote %s is %q, want via %s dev %s onlink:\n%s", o.podCIDR(2), line, o.nodeIP(2), ipipDevice, routes)
	}

	pingAll(t, pods)
	if t.Failed() {
		for i, n := range c.Nodes {
			r, _, _ := nodeState(t, n, ipipDevice)
			t.Logf("node %d:\n%s", i, r)
		}
		t.FailNow()
	}

	// The tunnel's TX counter stands still while node 0's pod talks to the same-subnet pod, and grows
	// when it talks to the remote one.
	before := txPackets(t, n0, ipipDevice)
	if err := harness.Ping(t, pods[0].NetNS, pods[1].ip.String()); err != nil {
		t.Fatalf("ping same-subnet pod: %v", err)
	}
	if after := txPackets(t, n0, ipipDevice); after != before {
		t.Errorf("%s sent %d packets while pinging the same-subnet pod: the direct route is encapsulated", ipipDevice, after-before)
	}
	before = txPackets(t, n0, ipipDevice)
	if err := harness.Ping(t, pods[0].NetNS, pods[2].ip.String()); err != nil {
		t.Fatalf("ping remote pod: %v", err)
	}
	if after := txPackets(t, n0, ipipDevice); after <= before {
		t.Errorf("%s sent nothing while pinging the remote pod (TX packets %d -> %d): the remote route is not encapsulated", ipipDevice, before, after)
	}
}
