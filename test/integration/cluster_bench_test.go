package integration

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netloom/netloom/test/harness"
)

// BenchmarkClusterScale: one node's cluster agent among scaleNodes Node objects in a real kube-apiserver
// (make bench-cluster). It reports the time from the agent's start until it is ready with a route to
// every peer, then for one Node added: the time until it is routed and the kernel route changes it
// cost (one: the agent changes only that peer), and the agent's resident memory. The peers are Node
// objects only: their InternalIPs sit on the node's /16 underlay, so the routes are valid without
// machines behind them.
func BenchmarkClusterScale(b *testing.B) {
	const scaleNodes = 1000
	harness.RequireRoot(b)
	s := harness.StartKubeAPIServer(b)
	node := harness.NewNetNS(b, "kscale")
	node.Run(b, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	node.Run(b, "ip", "addr", "add", "172.20.0.1/16", "dev", "eth0")
	node.Run(b, "ip", "link", "set", "eth0p", "up")
	node.Run(b, "ip", "link", "set", "eth0", "up")
	node.Run(b, "ip", "link", "set", "lo", "up")

	ip := func(i int) netip.Addr {
		return netip.AddrFrom4([4]byte{172, 20, byte((i + 2) / 256), byte((i + 2) % 256)})
	}
	cidr := func(i int) string { return fmt.Sprintf("10.%d.%d.0/24", 1+i/256, i%256) }
	t0 := time.Now()
	createNode(b, s, "self", []string{"10.250.0.0/24"}, netip.MustParseAddr("172.20.0.1"))
	// 16 clients at once, as the kubelets of a real cluster register.
	var g errgroup.Group
	g.SetLimit(16)
	for i := range scaleNodes - 1 {
		g.Go(func() error { return newNode(s, fmt.Sprintf("peer-%04d", i), []string{cidr(i)}, ip(i)) })
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d Node objects created in %s", scaleNodes, time.Since(t0).Round(time.Millisecond))

	token := s.ServiceAccountToken(b, "kube-system", "netloom", agentRules)
	api := s.ForwardInto(b, node)
	routes := func() int {
		out := node.Run(b, "ip", "route", "show", "proto", "80")
		return strings.Count(out, "\n")
	}
	for b.Loop() {
		start := time.Now()
		agent := harness.StartClusterAgent(b, node, "self", s.Kubeconfig(b, api.URL, token), map[string]any{
			"mode": "routed", "cniConfDir": b.TempDir(), "ipamDataDir": b.TempDir(), "networkName": harness.Unique("nlk"),
		})
		harness.WaitUntil(b, 5*time.Minute, "ready with every peer routed", func() (bool, string) {
			code, _, _ := agent.AgentGet("/readyz")
			n := routes()
			return code == 200 && n == scaleNodes-1, fmt.Sprintf("readyz %d, %d routes", code, n)
		})
		converge := time.Since(start)

		changes := func() float64 {
			n := &clusterNode{name: "self", agent: agent}
			return n.metric(b, "netloomd_cluster_route_changes_total")
		}
		before := changes()
		start = time.Now()
		createNode(b, s, "peer-new", []string{"10.200.0.0/24"}, ip(scaleNodes+10))
		harness.WaitUntil(b, time.Minute, "the new Node routed", func() (bool, string) {
			return routes() == scaleNodes, fmt.Sprint(routes())
		})
		oneNode := time.Since(start)
		ops := changes() - before
		rss, err := agent.RSS()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(converge.Seconds(), "s-converge")
		b.ReportMetric(oneNode.Seconds()*1000, "ms-one-node")
		b.ReportMetric(ops, "route-changes-one-node")
		b.ReportMetric(float64(rss)/(1<<20), "MiB-rss")
		b.Logf("%d nodes: converged from start in %s; one Node added routed in %s with %v kernel route changes; agent RSS %.1f MiB",
			scaleNodes, converge.Round(time.Millisecond), oneNode.Round(time.Millisecond), ops, float64(rss)/(1<<20))
		agent.Stop(b)
		if err := s.Client.CoreV1().Nodes().Delete(context.Background(), "peer-new", metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		node.Run(b, "ip", "route", "flush", "proto", "80")
	}
}
