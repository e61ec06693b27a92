package bench

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/overlay"
	"github.com/netloom/netloom/test/harness"
)

// Issue 15 goal 5: the targets of the dataplane figures.
const (
	dataplaneGoal         = "5 dataplane"
	bridgeVethTarget      = 0.95 // netloom bridge pod-to-pod at least this much of a bare veth pair
	vxlanUnderlayTarget   = 0.9  // vxlan-overlay at least this much of the underlay at the same MTU
	bareVethSubnet        = "10.215.0.0/24"
	dataplaneBridgeDevice = "cni0"
)

// spread is the min / median / max of a scenario's measurements.
type spread struct{ min, median, max float64 }

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{min: s[0], median: med, max: s[n-1]}
}

func (s spread) String() string { return fmt.Sprintf("%.2f/%.2f/%.2f", s.min, s.median, s.max) }

// measuredFlow is one path of a dataplane scenario and the Gbit/s measured on it so far.
type measuredFlow struct {
	name string
	flow
	gbps []float64
}

// measureRounds measures every flow once per round, in the given order on even rounds and in reverse
// on odd ones (ABBA), so a drift of the machine's load within a run weighs on every flow alike; one
// b.Loop iteration is one round.
func measureRounds(b *testing.B, flows []*measuredFlow) {
	b.Helper()
	for round := 0; b.Loop(); round++ {
		order := slices.Clone(flows)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, f := range order {
			f.gbps = append(f.gbps, f.flow.gbps(b))
		}
	}
}

// pairedRatios is num's measurement over den's, round by round: the spread of the ratio itself.
func pairedRatios(num, den *measuredFlow) []float64 {
	var out []float64
	for i := range min(len(num.gbps), len(den.gbps)) {
		if den.gbps[i] > 0 {
			out = append(out, num.gbps[i]/den.gbps[i])
		}
	}
	return out
}

// recordFlow puts f's spread in the report as three rows of scenario, in suite's column.
func recordFlow(scenario, suite string, f *measuredFlow) {
	s := spreadOf(f.gbps)
	for _, m := range []struct {
		metric string
		v      float64
	}{{"TCP min", s.min}, {"TCP median", s.median}, {"TCP max", s.max}} {
		results.record(scenario, m.metric, "Gbit/s", suite, m.v, true)
	}
}

// bareVethFlow is the floor of pod-to-pod traffic on one node: two namespaces joined by one veth pair,
// addressed in one subnet, nothing else on the path.
func bareVethFlow(b testing.TB) flow {
	b.Helper()
	server, client := harness.NewNetNS(b, "bvth"), harness.NewNetNS(b, "bvth")
	client.Run(b, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", server.Name)
	subnet := netip.MustParsePrefix(bareVethSubnet)
	addrs := []netip.Addr{subnet.Addr().Next(), subnet.Addr().Next().Next()}
	for i, n := range []harness.NetNS{client, server} {
		n.Run(b, "ip", "addr", "add", netip.PrefixFrom(addrs[i], subnet.Bits()).String(), "dev", "eth0")
		n.Run(b, "ip", "link", "set", "eth0", "up")
		n.Run(b, "ip", "link", "set", "lo", "up")
	}
	return flow{server: server, client: client, addr: addrs[1].String()}
}

// bridgePodFlow attaches two pods to a bridge on a node of their own (a namespace) through rt, with
// the typical node network of podConflist (bridge as the pods' gateway, masquerading, host-local), and
// returns the flow between them. It checks that the first pod reaches the second directly on its eth0,
// i.e. across the bridge. Without brNetfilter, the node's bridged frames skip the iptables hooks
// (bridge-nf-call-iptables=0, a per-namespace setting): the bridge's own cost, without the node's.
func bridgePodFlow(b testing.TB, rt *harness.Runtime, brNetfilter bool) flow {
	b.Helper()
	node := harness.NewNetNS(b, "bnode")
	node.Run(b, "ip", "link", "set", "lo", "up")
	if !brNetfilter {
		// Without br_netfilter loaded there is nothing to turn off.
		node.Run(b, "sh", "-c", "[ ! -e /proc/sys/net/bridge ] || sysctl -q -w net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0")
	}
	list := podConflist(harness.Unique("bdp"), dataplaneBridgeDevice, b.TempDir())
	var pods []harness.NetNS
	var ips []netip.Addr
	for range 2 {
		pod, ip := addBenchPod(b, node, rt, list, "bridge ADD")
		pods, ips = append(pods, pod), append(ips, ip)
	}
	route := pods[0].Run(b, "ip", "-o", "route", "get", ips[1].String())
	if !strings.Contains(route, " dev eth0 ") || strings.Contains(route, " via ") {
		b.Fatalf("bridge: pod 0 reaches pod 1 (%s) not directly on eth0: %s", ips[1], route)
	}
	return flow{server: pods[1], client: pods[0], addr: ips[1].String()}
}

// handBridgeFlow builds, with ip and iptables commands only, what bridgePodFlow's plugins make for two
// pods on a node: a bridge holding the gateway address, each pod on a veth whose host end is a port of
// it (hairpin on), its address in the bridge's subnet and a default route through the gateway, IPv4
// forwarding on, and the masquerade rules of ipMasq (a chain per pod accepting the pod network and
// masquerading the rest, jumped to from POSTROUTING for the pod's address). It is the floor of
// pod-to-pod traffic across a bridge: what the kernel costs with no plugin, on a node where bridged
// frames go through the iptables hooks (bridge-nf-call-iptables=1, br_netfilter loaded) as on
// bridgePodFlow's node.
func handBridgeFlow(b testing.TB) flow {
	b.Helper()
	const br, subnet, gw = "hbr0", "10.213.0.0/16", "10.213.0.1"
	node := harness.NewNetNS(b, "hbnode")
	node.Run(b, "ip", "link", "set", "lo", "up")
	node.Run(b, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	node.Run(b, "ip", "link", "add", br, "type", "bridge")
	node.Run(b, "ip", "addr", "add", gw+"/16", "dev", br)
	node.Run(b, "ip", "link", "set", br, "up")
	var pods []harness.NetNS
	for i := range 2 {
		pod, host, ip := harness.NewNetNS(b, "hbpod"), fmt.Sprintf("hbv%d", i), fmt.Sprintf("10.213.0.%d", i+2)
		node.Run(b, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
		node.Run(b, "ip", "link", "set", host, "master", br)
		node.Run(b, "ip", "link", "set", host, "type", "bridge_slave", "hairpin", "on")
		node.Run(b, "ip", "link", "set", host, "up")
		pod.Run(b, "ip", "link", "set", "lo", "up")
		pod.Run(b, "ip", "addr", "add", ip+"/16", "dev", "eth0")
		pod.Run(b, "ip", "link", "set", "eth0", "up")
		pod.Run(b, "ip", "route", "add", "default", "via", gw)
		chain := fmt.Sprintf("CNI-HAND-%d", i)
		node.Run(b, "iptables", "-t", "nat", "-N", chain)
		node.Run(b, "iptables", "-t", "nat", "-A", chain, "-d", subnet, "-j", "ACCEPT")
		node.Run(b, "iptables", "-t", "nat", "-A", chain, "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE")
		node.Run(b, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", ip, "-j", chain)
		pods = append(pods, pod)
	}
	return flow{server: pods[1], client: pods[0], addr: "10.213.0.3"}
}

// underlayMTU is the MTU of n's underlay interface.
func underlayMTU(b testing.TB, n *harness.Node) int {
	b.Helper()
	var mtu int
	err := n.Do(func() error {
		l, err := netlink.LinkByName(n.Iface)
		if err == nil {
			mtu = l.Attrs().MTU
		}
		return err
	})
	if err != nil {
		b.Fatalf("node %s: read the MTU of %s: %v", n.Name, n.Iface, err)
	}
	return mtu
}

// lowerUnderlayMTU sets the MTU of every node's underlay interface in c to mtu.
func lowerUnderlayMTU(b *testing.B, c *harness.Cluster, mtu int) {
	b.Helper()
	for _, n := range c.Nodes {
		n.Run(b, "ip", "link", "set", n.Iface, "mtu", fmt.Sprint(mtu))
	}
}

// handVXLANFlow builds, with ip commands only, the kernel path that vxlan-overlay sets up for a pod on
// each of c's first two nodes: a VXLAN device over the underlay (the same VNI kind, port, outer
// checksums, no learning, MTU lowered by the overhead), the other node's pod subnet routed onlink to the
// peer's underlay address, a permanent neighbour entry and an FDB entry for the peer's VTEP, and each
// pod on a routed veth (its address as /32, 169.254.1.1 as its gateway, a host route to it). It is the
// floor of pod-to-pod traffic across an overlay: what the kernel costs with no plugin and no agent.
func handVXLANFlow(b testing.TB, c *harness.Cluster) flow {
	b.Helper()
	const dev, vni, port = "vxf", "4242", "4789"
	mtu := fmt.Sprint(underlayMTU(b, c.Nodes[0]) - overlay.VXLAN.Overhead(c.Nodes[0].Addr.Addr()))
	macs := []string{"0e:4c:0a:fe:00:01", "0e:4c:0a:fe:00:02"}
	pods := []harness.NetNS{harness.NewNetNS(b, "hvx"), harness.NewNetNS(b, "hvx")}
	podIP := func(i int) string { return fmt.Sprintf("10.246.%d.2", i+1) }
	for i := range 2 {
		n, peer, pod := c.Nodes[i], c.Nodes[1-i], pods[i]
		n.Run(b, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
		n.Run(b, "ip", "link", "add", dev, "mtu", mtu, "address", macs[i], "type", "vxlan", "id", vni,
			"local", n.Addr.Addr().String(), "dev", n.Iface, "dstport", port, "nolearning", "udpcsum")
		n.Run(b, "ip", "link", "set", dev, "up")
		peerAddr := peer.Addr.Addr().String()
		n.Run(b, "ip", "neigh", "add", peerAddr, "lladdr", macs[1-i], "dev", dev, "nud", "permanent")
		n.Run(b, "bridge", "fdb", "add", macs[1-i], "dev", dev, "dst", peerAddr)
		n.Run(b, "ip", "route", "add", fmt.Sprintf("10.246.%d.0/24", 2-i), "via", peerAddr, "dev", dev, "onlink")
		n.Run(b, "ip", "link", "add", "hv0", "mtu", mtu, "type", "veth", "peer", "name", "eth0", "mtu", mtu, "netns", pod.Name)
		n.Run(b, "ip", "link", "set", "hv0", "up")
		hostMAC := strings.TrimSpace(n.Run(b, "cat", "/sys/class/net/hv0/address"))
		pod.Run(b, "ip", "link", "set", "lo", "up")
		pod.Run(b, "ip", "link", "set", "eth0", "up")
		pod.Run(b, "ip", "addr", "add", podIP(i)+"/32", "dev", "eth0")
		pod.Run(b, "ip", "route", "add", overlay.PodGatewayV4.String(), "dev", "eth0", "scope", "link")
		pod.Run(b, "ip", "route", "add", "default", "via", overlay.PodGatewayV4.String(), "dev", "eth0")
		pod.Run(b, "ip", "neigh", "add", overlay.PodGatewayV4.String(), "lladdr", hostMAC, "dev", "eth0", "nud", "permanent")
		podMAC := strings.TrimSpace(pod.Run(b, "cat", "/sys/class/net/eth0/address"))
		n.Run(b, "ip", "neigh", "add", podIP(i), "lladdr", podMAC, "dev", "hv0", "nud", "permanent")
		n.Run(b, "ip", "route", "add", podIP(i)+"/32", "dev", "hv0", "scope", "link")
	}
	return flow{server: pods[1], client: pods[0], addr: podIP(1)}
}

// BenchmarkDataplane measures issue 15's goal 5, pod-to-pod TCP throughput (iperf3, 3 s a measurement)
// against what the kernel does without a plugin, every path of a scenario measured once per iteration
// in alternating order (ABBA), each on topology of its own built at the start:
//
//   - bridge: two pods on one node's bridge through netloom's bridge plugin and, in the reference
//     column, through the reference's; the floor is two namespaces joined by a bare veth pair.
//   - vxlan-overlay: a pod on each of two nodes of one segment; the floor is the underlay node to node
//     with the nodes' MTU lowered by the tunnel's overhead (50 bytes over IPv4), so both carry the same
//     payload per packet; the underlay at its full MTU is measured too, for context, and so is the
//     same pod-to-pod path built by hand (handVXLANFlow), to tell the kernel's cost of the overlay from
//     anything the plugin adds.
//
// Run as root, with enough iterations for the spread to mean something:
//
//	NETLOOM_BIN=$PWD/bin go test ./test/bench -run '^$' -bench Dataplane -benchtime 10x
//
// The report gets each path's min / median / max and the goal figures: median over median, with the
// spread of the round-by-round ratio in the basis.
func BenchmarkDataplane(b *testing.B) {
	harness.RequireRoot(b)
	var log []string
	logFlows := func(name string, flows []*measuredFlow) {
		for _, f := range flows {
			log = append(log, fmt.Sprintf("%s / %s: %.2f", name, f.name, f.gbps))
		}
	}

	b.Run("bridge", func(b *testing.B) {
		veth := &measuredFlow{name: "bare veth", flow: bareVethFlow(b)}
		nl := &measuredFlow{name: "netloom bridge", flow: bridgePodFlow(b, harness.NewRuntime(b), true)}
		ref := &measuredFlow{name: "reference bridge", flow: bridgePodFlow(b, harness.NewRuntimeWithPath(b,
			harness.ReferencePlugin(b, "bridge"), harness.ReferencePlugin(b, "host-local")), true)}
		own := &measuredFlow{name: "netloom bridge, bridge-nf-call-iptables=0", flow: bridgePodFlow(b, harness.NewRuntime(b), false)}
		hand := &measuredFlow{name: "bridge by hand", flow: handBridgeFlow(b)}
		flows := []*measuredFlow{veth, nl, ref, own, hand}
		measureRounds(b, flows)
		logFlows("bridge", flows)

		recordFlow("dataplane bridge pod-to-pod", suiteNetloom, nl)
		recordFlow("dataplane bridge pod-to-pod", suiteReference, ref)
		recordFlow("dataplane bridge pod-to-pod, bridge-nf-call-iptables=0", suiteNetloom, own)
		recordFlow("dataplane bare veth pair (floor, no plugin)", suiteNetloom, veth)
		recordFlow("dataplane bridge pod-to-pod built by hand (floor, no plugin)", suiteNetloom, hand)
		nlS, vethS, refS, ownS, handS := spreadOf(nl.gbps), spreadOf(veth.gbps), spreadOf(ref.gbps), spreadOf(own.gbps), spreadOf(hand.gbps)
		ratio := nlS.median / vethS.median
		b.ReportMetric(nlS.median, "Gbit/s")
		b.ReportMetric(ratio, "x-veth")
		b.ReportMetric(ownS.median/vethS.median, "x-veth-no-br-netfilter")
		b.ReportMetric(nlS.median/handS.median, "x-by-hand")
		results.goal(goalEntry{Goal: dataplaneGoal, Metric: "bridge pod-to-pod / bare veth Gbit/s (median)",
			Value: ratio, Target: bridgeVethTarget,
			Basis: fmt.Sprintf("min/median/max Gbit/s over %d interleaved rounds of iperf3 -t %d: netloom bridge %s, bare veth %s, reference bridge %s; per-round ratio %s; the same bridge on a node with bridge-nf-call-iptables=0: %s, %.2fx the veth pair; the same bridge and masquerade rules built by hand with ip and iptables %s (%.2fx the veth pair), netloom %.2fx of it, per-round %s",
				len(nl.gbps), measureSeconds, nlS, vethS, refS, spreadOf(pairedRatios(nl, veth)), ownS, ownS.median/vethS.median,
				handS, handS.median/vethS.median, nlS.median/handS.median, spreadOf(pairedRatios(nl, hand)))})
	})

	b.Run("vxlan-overlay", func(b *testing.B) {
		var vx overlayScenario
		for _, s := range overlayScenarios() {
			if s.name == "vxlan-overlay" {
				vx = s
			}
		}
		c := harness.NewCluster(b, harness.ClusterSpec{Local: 2})
		pods := &measuredFlow{name: "vxlan-overlay", flow: overlayFlow(b, vx, c)}
		full := &measuredFlow{name: "underlay", flow: underlayFlow(c)}
		same := harness.NewCluster(b, harness.ClusterSpec{Local: 2})
		mtu := underlayMTU(b, same.Nodes[0]) - overlay.VXLAN.Overhead(same.Nodes[0].Addr.Addr())
		lowerUnderlayMTU(b, same, mtu)
		sameMTU := &measuredFlow{name: fmt.Sprintf("underlay MTU %d", mtu), flow: underlayFlow(same)}
		hand := &measuredFlow{name: "vxlan by hand", flow: handVXLANFlow(b, harness.NewCluster(b, harness.ClusterSpec{Local: 2}))}
		flows := []*measuredFlow{sameMTU, pods, hand, full}
		measureRounds(b, flows)
		logFlows("vxlan-overlay", flows)

		recordFlow("dataplane vxlan-overlay pod-to-pod", suiteNetloom, pods)
		recordFlow(fmt.Sprintf("dataplane underlay at MTU %d (floor, no plugin)", mtu), suiteNetloom, sameMTU)
		recordFlow("dataplane underlay at full MTU (no plugin)", suiteNetloom, full)
		recordFlow("dataplane vxlan pod-to-pod built by hand (floor, no plugin)", suiteNetloom, hand)
		podS, sameS, fullS, handS := spreadOf(pods.gbps), spreadOf(sameMTU.gbps), spreadOf(full.gbps), spreadOf(hand.gbps)
		ratio := podS.median / sameS.median
		b.ReportMetric(podS.median, "Gbit/s")
		b.ReportMetric(ratio, "x-underlay-same-MTU")
		b.ReportMetric(podS.median/handS.median, "x-by-hand")
		results.goal(goalEntry{Goal: dataplaneGoal, Metric: "vxlan-overlay / underlay at the same MTU",
			Value: ratio, Target: vxlanUnderlayTarget,
			Basis: fmt.Sprintf("min/median/max Gbit/s over %d interleaved rounds of iperf3 -t %d: vxlan-overlay %s, underlay at MTU %d %s, at full MTU %s; per-round ratio %s; the same pod-to-pod path built by hand with ip commands %s (%.2fx the underlay), netloom %.2fx of it, per-round %s",
				len(pods.gbps), measureSeconds, podS, mtu, sameS, fullS, spreadOf(pairedRatios(pods, sameMTU)),
				handS, handS.median/sameS.median, podS.median/handS.median, spreadOf(pairedRatios(pods, hand)))})
	})
	b.Logf("Gbit/s samples in order of rounds:\n%s", strings.Join(log, "\n"))
}

func TestSpreadOf(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want spread
	}{
		{nil, spread{}},
		{[]float64{3}, spread{3, 3, 3}},
		{[]float64{5, 1, 3}, spread{1, 3, 5}},
		{[]float64{4, 1, 2, 8}, spread{1, 3, 8}},
	} {
		if got := spreadOf(tc.in); got != tc.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	if got := (spread{1, 2.5, 4}).String(); got != "1.00/2.50/4.00" {
		t.Errorf("String = %q", got)
	}
}

func TestPairedRatios(t *testing.T) {
	num := &measuredFlow{gbps: []float64{2, 3, 9}}
	den := &measuredFlow{gbps: []float64{4, 0}}
	if got := pairedRatios(num, den); !slices.Equal(got, []float64{0.5}) {
		t.Errorf("pairedRatios = %v, want [0.5]: round by round, a zero measurement and an unpaired one left out", got)
	}
}
