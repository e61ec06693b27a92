package integration

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netloom/netloom/test/harness"
)

// masqTable is the agent's masquerade table, as nft names it.
var masqTable = []string{"inet", "netloom-cluster"}

// masqListing is `nft list table inet netloom-cluster` on n, or "" when there is no such table.
func (n *clusterNode) masqListing() string {
	out, err := n.Exec(append([]string{"nft", "list", "table"}, masqTable...)...)
	if err != nil {
		return ""
	}
	return out
}

// podAddr is the address of n's pod of the family of like.
func (n *clusterNode) podAddr(t *testing.T, like netip.Addr) netip.Addr {
	t.Helper()
	for _, a := range n.podAddrs {
		if a.Is4() == like.Is4() {
			return a
		}
	}
	t.Fatalf("%s: the pod has no address of the family of %s (it has %v)", n.name, like, n.podAddrs)
	return netip.Addr{}
}

// sourceSeen connects from n's pod over TCP to a harness.Serve server at addr:port that answers with
// "$SOCAT_PEERADDR", and returns the source address the server saw.
func (n *clusterNode) sourceSeen(t *testing.T, addr netip.Addr, port uint16) (netip.Addr, error) {
	t.Helper()
	got, err := harness.Dial(n.pod, "tcp", addr, port, 0)
	if err != nil {
		return netip.Addr{}, err
	}
	return peerAddr(got), nil
}

// countLines counts the lines of n's agent log that hold s.
func (n *clusterNode) countLines(t *testing.T, s string) int {
	t.Helper()
	raw, err := os.ReadFile(n.agent.Logs()[0])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(raw), s)
}

// TestClusterRoutedMasquerade: three nodes in routed mode, dual-stack; two masquerade (the default with
// a clusterCIDR), the third runs with "masquerade": false. A pod's TCP connection to a listener outside
// the cluster CIDR (the router) arrives from its node's InternalIP, IPv4 and IPv6; one to a pod on
// another node arrives from the pod's own address. The table is written once and left alone by the
// resyncs; deleted or flushed by hand it is back within the resync interval; masquerade false writes no
// table and that node's pods leave with their own address; SIGTERM leaves the table in place.
func TestClusterRoutedMasquerade(t *testing.T) {
	const outsidePort, podPort = 7101, 7102
	harness.RequireRoot(t)
	s := harness.StartKubeAPIServer(t)
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 3})
	var nodes []*clusterNode
	for i, hn := range c.Nodes {
		n := &clusterNode{Node: hn, name: fmt.Sprintf("node-%d", i),
			podCIDRs: []string{fmt.Sprintf("10.244.%d.0/24", i), netip.MustParsePrefix(fmt.Sprintf("fd44:0:0:%d::/64", i)).String()}}
		createNode(t, s, n.name, n.podCIDRs, hn.Addr.Addr(), hn.Addr6.Addr())
		nodes = append(nodes, n)
	}
	masq, plain := nodes[:2], nodes[2]
	plain.config = map[string]any{"masquerade": false}
	startAgents(t, s, nodes, harness.Unique("nlk"), "routed")
	waitAgents(t, nodes)
	addClusterPods(t, nodes)

	// The table: one rule per family, from the node's pod CIDR to anything outside the cluster CIDR.
	want := map[*clusterNode]string{}
	for _, n := range masq {
		listing := n.masqListing()
		for _, rule := range []string{
			fmt.Sprintf("ip saddr %s ip daddr != 10.244.0.0/16 masquerade", n.podCIDRs[0]),
			fmt.Sprintf("ip6 saddr %s ip6 daddr != fd44::/48 masquerade", n.podCIDRs[1]),
			"type nat hook postrouting priority srcnat; policy accept;",
		} {
			if !strings.Contains(listing, rule) {
				t.Errorf("%s: the masquerade table lacks %q:\n%s", n.name, rule, listing)
			}
		}
		want[n] = listing
		if got := n.metric(t, "netloomd_cluster_masquerade_rules"); got != 2 {
			t.Errorf("%s: netloomd_cluster_masquerade_rules %v, want 2", n.name, got)
		}
	}
	if l := plain.masqListing(); l != "" {
		t.Errorf("%s (masquerade false) has a masquerade table:\n%s", plain.name, l)
	}

	// Real traffic. The router knows no pod CIDR but that of the node without masquerade: its pods'
	// packets reach the router with their own source and the replies find their way back.
	for _, p := range plain.podCIDRs {
		via := plain.Addr.Addr()
		if netip.MustParsePrefix(p).Addr().Is6() {
			via = plain.Addr6.Addr()
		}
		c.Router.Run(t, "ip", "route", "add", p, "via", via.String())
	}
	harness.Serve(t, &c.Router, "tcp", outsidePort, "$SOCAT_PEERADDR")
	harness.Serve(t, nodes[1].pod, "tcp", podPort, "$SOCAT_PEERADDR")
	outside := []netip.Addr{c.Nodes[0].Gateway, c.Nodes[0].Gateway6}
	checkTraffic := func(when string) {
		t.Helper()
		for _, n := range nodes {
			for _, dst := range outside {
				want := n.podAddr(t, dst)
				if n != plain {
					want = n.Addr.Addr()
					if dst.Is6() {
						want = n.Addr6.Addr()
					}
				}
				if got, err := n.sourceSeen(t, dst, outsidePort); err != nil || got != want {
					t.Errorf("%s: pod on %s -> outside %s: the listener saw %v (%v), want %s", when, n.name, dst, got, err, want)
				}
			}
		}
		for _, n := range []*clusterNode{nodes[0], plain} {
			for _, dst := range nodes[1].podAddrs {
				if got, err := n.sourceSeen(t, dst, podPort); err != nil || got != n.podAddr(t, dst) {
					t.Errorf("%s: pod on %s -> pod on %s (%s): the pod saw %v (%v), want the client pod's %s", when, n.name, nodes[1].name, dst, got, err, n.podAddr(t, dst))
				}
			}
		}
	}
	checkTraffic("after start")

	// The resyncs read the table back and leave it alone.
	for _, n := range nodes {
		harness.WaitUntil(t, 20*time.Second, n.name+": three resyncs more", func() (bool, string) {
			k := n.countLines(t, `"msg":"resync done"`)
			return k >= 4, fmt.Sprintf("%d resyncs", k)
		})
	}
	for _, n := range nodes {
		wantWrites := 1.0
		if n == plain {
			wantWrites = 0
		}
		if got := n.metric(t, "netloomd_cluster_masquerade_writes_total"); got != wantWrites {
			t.Errorf("%s: the masquerade table was written %v times over several resyncs, want %v", n.name, got, wantWrites)
		}
	}

	// Drift: the table deleted on one node and its chain flushed on the other come back as they were.
	nodes[0].Run(t, append([]string{"nft", "delete", "table"}, masqTable...)...)
	nodes[1].Run(t, append([]string{"nft", "flush", "chain"}, append(masqTable, "postrouting")...)...)
	t0 := time.Now()
	for _, n := range masq {
		harness.WaitUntil(t, 15*time.Second, n.name+": the masquerade table repaired", func() (bool, string) {
			l := n.masqListing()
			return l == want[n], l
		})
	}
	t.Logf("the masquerade table deleted or flushed by hand: back after %s", time.Since(t0).Round(time.Millisecond))
	for _, n := range masq {
		if got := n.metric(t, "netloomd_cluster_masquerade_writes_total"); got != 2 {
			t.Errorf("%s: the masquerade table written %v times, want 2 (once more for the repair)", n.name, got)
		}
		if k := n.countLines(t, `"msg":"wrote the masquerade table"`); k != 2 {
			t.Errorf("%s: %d log lines say the masquerade table was written, want 2", n.name, k)
		}
	}
	checkTraffic("after the repair")

	// SIGTERM: the agent stops, the table stays.
	nodes[0].agent.Stop(t)
	if l := nodes[0].masqListing(); l != want[nodes[0]] {
		t.Errorf("%s: the masquerade table after the agent stopped:\n%s", nodes[0].name, l)
	}
	if got, err := nodes[0].sourceSeen(t, outside[0], outsidePort); err != nil || got != nodes[0].Addr.Addr() {
		t.Errorf("agent stopped: pod on %s -> outside: the listener saw %v (%v), want %s", nodes[0].name, got, err, nodes[0].Addr.Addr())
	}
}
