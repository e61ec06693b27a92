package integration

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netloom/netloom/test/harness"
)

// agentRules is what the deployment's ClusterRole grants netloomd: the agent must work with no more.
var agentRules = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "patch"}}}

// createNode creates a Node object with pod CIDRs and InternalIPs, as the controller-manager and the
// kubelet would set them.
func createNode(t testing.TB, s *harness.KubeAPIServer, name string, podCIDRs []string, ips ...netip.Addr) {
	t.Helper()
	if err := newNode(s, name, podCIDRs, ips...); err != nil {
		t.Fatal(err)
	}
}

func newNode(s *harness.KubeAPIServer, name string, podCIDRs []string, ips ...netip.Addr) error {
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: podCIDRs}}
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	created, err := s.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create Node %s: %w", name, err)
	}
	created.Status.NodeInfo.ContainerRuntimeVersion = "containerd://2.1.4" // its CNI library reads 1.1.0
	for _, ip := range ips {
		created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()})
	}
	if _, err := s.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("Node %s status: %w", name, err)
	}
	return nil
}

// clusterNode is one node of the test cluster with its agent.
type clusterNode struct {
	*harness.Node
	name     string
	podCIDRs []string
	confDir  string
	agent    *harness.Daemon
	api      *harness.APIForward
	pod      *harness.NetNS
	podAddrs []netip.Addr
	config   map[string]any // keys of this node's agent configuration over startAgents' defaults
}

func (n *clusterNode) conflist() string { return filepath.Join(n.confDir, "10-netloom.conflist") }

// routes lists the node's routes of the agent's protocol (80), IPv4 and IPv6.
func (n *clusterNode) routes(t *testing.T) string {
	return n.Run(t, "ip", "route", "show", "proto", "80") + n.Run(t, "ip", "-6", "route", "show", "proto", "80")
}

// metric reads one value of the agent's /metrics.
func (n *clusterNode) metric(t testing.TB, name string) float64 {
	t.Helper()
	code, body, err := n.agent.AgentGet("/metrics")
	if err != nil || code != 200 {
		t.Fatalf("%s /metrics: %d %v", n.name, code, err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s /metrics has no %s:\n%s", n.name, name, body)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// startAgents starts a netloomd cluster agent per node in mode with the deployment's RBAC; extra keys
// of the configuration, if given, are added to each node's.
func startAgents(t *testing.T, s *harness.KubeAPIServer, nodes []*clusterNode, network, mode string, extra ...map[string]any) {
	t.Helper()
	token := s.ServiceAccountToken(t, "kube-system", "netloom", agentRules)
	for _, n := range nodes {
		n.confDir = t.TempDir()
		n.api = s.ForwardInto(t, n.NetNS)
		cfg := map[string]any{
			"mode": mode, "clusterCIDR": "10.244.0.0/16,fd44::/48", "cniConfDir": n.confDir,
			"resyncInterval": "2s", "networkName": network, "ipamDataDir": t.TempDir(), "stateDir": t.TempDir(), "logLevel": "debug",
		}
		for _, e := range extra {
			maps.Copy(cfg, e)
		}
		maps.Copy(cfg, n.config)
		n.agent = harness.StartClusterAgent(t, n.NetNS, n.name, s.Kubeconfig(t, n.api.URL, token), cfg)
	}
}

// waitAgents waits until every node's agent wrote its conflist and is ready.
func waitAgents(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	for _, n := range nodes {
		harness.WaitUntil(t, 30*time.Second, n.name+": conflist written", func() (bool, string) {
			_, err := os.Stat(n.conflist())
			return err == nil, fmt.Sprint(err)
		})
		harness.WaitUntil(t, 30*time.Second, n.name+": /readyz", func() (bool, string) {
			code, body, err := n.agent.AgentGet("/readyz")
			return err == nil && code == 200, fmt.Sprintf("%d %s %v", code, body, err)
		})
	}
}

// addClusterPods adds one pod per node through the conflist the node's agent wrote, as a runtime would.
func addClusterPods(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	rt := harness.NewRuntime(t)
	for _, n := range nodes {
		raw, _ := os.ReadFile(n.conflist())
		pod := harness.NewNetNS(t, "kpod")
		n.pod = &pod
		id := harness.Unique("ctr-")
		err := n.Do(func() error {
			res, err := rt.Add(t, raw, id, pod.Path, "eth0", nil)
			if err == nil {
				for _, a := range podAddrs(t, res) {
					n.podAddrs = append(n.podAddrs, a.Addr())
				}
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: ADD through the agent's conflist: %v", n.name, err)
		}
		t.Cleanup(func() { _ = n.Do(func() error { return rt.Del(t, raw, id, pod.Path, "eth0", nil) }) })
	}
}

// dualStackNodes creates a Node object for each of hns, called node-<i>, with the pod CIDRs
// 10.244.<i>.0/24 and fd44:0:0:<i>::/64 and the node's underlay addresses as InternalIPs.
func dualStackNodes(t *testing.T, s *harness.KubeAPIServer, hns []*harness.Node) []*clusterNode {
	t.Helper()
	var nodes []*clusterNode
	for i, hn := range hns {
		n := &clusterNode{Node: hn, name: fmt.Sprintf("node-%d", i),
			podCIDRs: []string{fmt.Sprintf("10.244.%d.0/24", i), netip.MustParsePrefix(fmt.Sprintf("fd44:0:0:%d::/64", i)).String()}}
		createNode(t, s, n.name, n.podCIDRs, hn.Addr.Addr(), hn.Addr6.Addr())
		nodes = append(nodes, n)
	}
	return nodes
}

// spareAddr is an address on the nodes' segment that no node has (.99): the InternalIP of a Node
// that exists only in the API.
func spareAddr(nodes []*clusterNode) netip.Addr {
	a := nodes[0].Addr.Masked().Addr().Next()
	for range 98 {
		a = a.Next()
	}
	return a
}

// untilEach polls every node until check holds for it (each node's time counted from start, which
// may be earlier than the call), fails the test after timeout, and returns when each got there.
func untilEach(t *testing.T, nodes []*clusterNode, start time.Time, timeout time.Duration, what string, check func(*clusterNode) (bool, string)) map[string]time.Duration {
	t.Helper()
	took := map[string]time.Duration{}
	last := map[string]string{}
	for len(took) < len(nodes) {
		for _, n := range nodes {
			if _, done := took[n.name]; done {
				continue
			}
			if ok, state := check(n); ok {
				took[n.name] = time.Since(start)
			} else {
				last[n.name] = state
			}
		}
		if len(took) < len(nodes) && time.Since(start) > timeout {
			for _, n := range nodes {
				if _, done := took[n.name]; !done {
					t.Errorf("%s: %s: not after %s; last seen:\n%s", n.name, what, timeout, last[n.name])
				}
			}
			t.FailNow()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return took
}

// pingAcross pings every other node's pod from each node's pod.
func pingAcross(t *testing.T, nodes []*clusterNode, when string) {
	t.Helper()
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			for _, a := range to.podAddrs {
				if err := harness.Ping(t, *from.pod, a.String()); err != nil {
					t.Errorf("%s: pod on %s -> pod on %s (%s): %v", when, from.name, to.name, a, err)
				}
			}
		}
	}
}

// TestClusterRouted: three nodes on one L2 segment and one behind a router, Node objects in a real
// kube-apiserver, netloomd's cluster agent on each of the three with the deployment's RBAC. Each
// writes its conflist from its pod CIDRs; pods added through it reach the pods of every other node
// (IPv4 and IPv6); the node behind the router is refused with its reason; a Node added or deleted
// changes one route on each node (measured); drift is repaired by the resync; an API-server outage
// and an agent's SIGTERM leave the datapath as it is.
func TestClusterRouted(t *testing.T) {
	harness.RequireRoot(t)
	s := harness.StartKubeAPIServer(t)
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 3, Remote: 1})
	network := harness.Unique("nlk")
	nodes := dualStackNodes(t, s, c.Nodes[:3])
	remote := c.Nodes[3]
	createNode(t, s, "node-remote", []string{"10.244.9.0/24"}, remote.Addr.Addr())

	start := time.Now()
	startAgents(t, s, nodes, network, "routed")
	waitAgents(t, nodes)
	t.Logf("three agents started, conflists written and ready in %s", time.Since(start).Round(time.Millisecond))

	// The conflist: the node's own pod CIDRs, cniVersion 1.1.0; the Node annotated.
	for _, n := range nodes {
		raw, err := os.ReadFile(n.conflist())
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range append([]string{`"cniVersion": "1.1.0"`, `"type": "portmap"`}, n.podCIDRs...) {
			if !strings.Contains(string(raw), want) {
				t.Errorf("%s conflist lacks %s:\n%s", n.name, want, raw)
			}
		}
		obj, err := s.Client.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{})
		if err != nil || obj.Annotations["netloom.io/mode"] != "routed" {
			t.Errorf("%s annotations %v (%v): want netloom.io/mode=routed", n.name, obj.Annotations, err)
		}
	}

	addClusterPods(t, nodes)
	pingAll := func(when string) { t.Helper(); pingAcross(t, nodes, when) }
	pingAll("after start")

	// Routes: one per peer pod CIDR, via its InternalIP; none to the node behind the router, refused.
	for _, n := range nodes {
		routes := n.routes(t)
		for _, p := range nodes {
			if p == n {
				continue
			}
			for _, want := range []string{p.podCIDRs[0] + " via " + p.Addr.Addr().String(), p.podCIDRs[1] + " via " + p.Addr6.Addr().String()} {
				if !strings.Contains(routes, want) {
					t.Errorf("%s lacks the route %s:\n%s", n.name, want, routes)
				}
			}
		}
		if strings.Contains(routes, "10.244.9.0/24") {
			t.Errorf("%s routes the pod CIDR of the node behind a router:\n%s", n.name, routes)
		}
		if got := n.metric(t, `netloomd_cluster_peers{state="refused"}`); got != 1 {
			t.Errorf("%s: %v peers refused, want 1 (node-remote)", n.name, got)
		}
	}
	if log, _ := os.ReadFile(nodes[0].agent.Logs()[0]); !strings.Contains(string(log), "behind a router") {
		t.Errorf("node-0's log does not say why node-remote is not routed")
	}

	// A Node joins, then leaves: one route change on each node, each time.
	extra := spareAddr(nodes)
	before := map[string]float64{}
	for _, n := range nodes {
		before[n.name] = n.metric(t, "netloomd_cluster_route_changes_total")
	}
	t0 := time.Now()
	createNode(t, s, "node-new", []string{"10.244.7.0/24"}, extra)
	for _, n := range nodes {
		harness.WaitUntil(t, 20*time.Second, n.name+": route to node-new", func() (bool, string) {
			r := n.routes(t)
			return strings.Contains(r, "10.244.7.0/24 via "+extra.String()), r
		})
	}
	t.Logf("Node added: every node routes it after %s", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if err := s.Client.CoreV1().Nodes().Delete(context.Background(), "node-new", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		harness.WaitUntil(t, 20*time.Second, n.name+": route to node-new removed", func() (bool, string) {
			r := n.routes(t)
			return !strings.Contains(r, "10.244.7.0/24"), r
		})
	}
	t.Logf("Node deleted: its route is gone from every node after %s", time.Since(t0).Round(time.Millisecond))
	for _, n := range nodes {
		if d := n.metric(t, "netloomd_cluster_route_changes_total") - before[n.name]; d != 2 {
			t.Errorf("%s: %v kernel route changes for one Node added and deleted, want 2 (one each)", n.name, d)
		}
	}

	// Drift: a route removed by hand comes back, a stray route of the agent's protocol goes.
	n1 := nodes[1]
	n1.Run(t, "ip", "route", "del", nodes[0].podCIDRs[0])
	n1.Run(t, "ip", "route", "add", "10.244.77.0/24", "via", nodes[0].Addr.Addr().String(), "proto", "80")
	harness.WaitUntil(t, 15*time.Second, "node-1: the resync repairs its routes", func() (bool, string) {
		r := n1.routes(t)
		return strings.Contains(r, nodes[0].podCIDRs[0]+" via") && !strings.Contains(r, "10.244.77.0/24"), r
	})

	// The API server unreachable from every node: nothing is torn down; a Node created meanwhile is
	// routed once it is reachable again.
	for _, n := range nodes {
		n.api.Cut()
	}
	time.Sleep(5 * time.Second)
	pingAll("API server unreachable")
	for _, n := range nodes {
		if code, _, err := n.agent.AgentGet("/healthz"); err != nil || code != 200 {
			t.Errorf("%s: agent not healthy during the outage: %d %v", n.name, code, err)
		}
	}
	createNode(t, s, "node-late", []string{"10.244.8.0/24"}, extra)
	t0 = time.Now()
	for _, n := range nodes {
		n.api.Restore(t)
	}
	for _, n := range nodes {
		harness.WaitUntil(t, 90*time.Second, n.name+": route to node-late after the outage", func() (bool, string) {
			r := n.routes(t)
			return strings.Contains(r, "10.244.8.0/24 via "+extra.String()), r
		})
	}
	t.Logf("after the outage: every node routes the Node created meanwhile %s after the API server is back", time.Since(t0).Round(time.Millisecond))
	if got := nodes[0].metric(t, "netloomd_cluster_watch_errors_total"); got == 0 {
		t.Errorf("node-0 counted no watch error during the outage")
	}

	// SIGTERM: the agent stops, the datapath and the conflist stay.
	nodes[2].agent.Stop(t)
	if _, err := os.Stat(nodes[2].conflist()); err != nil {
		t.Errorf("conflist gone after the agent stopped: %v", err)
	}
	if r := nodes[2].routes(t); !strings.Contains(r, nodes[0].podCIDRs[0]) {
		t.Errorf("node-2's routes gone after its agent stopped:\n%s", r)
	}
	pingAll("node-2's agent stopped")
}

// TestClusterAPIServerRestart stops the kube-apiserver with SIGTERM, kills it apiGrace later and
// keeps it stopped for apiOutage.
const (
	apiGrace  = 2 * time.Second
	apiOutage = 10 * time.Second
	// apiCatchUp bounds the time from the API server's readiness to a Node created then being routed
	// everywhere: the agents retry at most every 4.5 s (pkg/cluster apiRetryMax with its jitter).
	apiCatchUp = 10 * time.Second
)

// TestClusterAPIServerRestart: the kube-apiserver process stopped for apiOutage and started again, etcd
// and its data kept, as a control-plane upgrade or crash does, while the pods of three nodes ping the
// next node's pod five times a second (IPv4 and IPv6) and one keeps a TCP connection busy. No echo
// request is lost and the TCP flow never stalls; the agents keep every kernel route as it was, stay
// healthy and ready (readiness says the pod network works, which it does: see cmd/netloomd/README.md)
// and count the failed watches; once the API server is back, a Node created then is routed on every
// node and, deleted, unrouted (both timed, the figures the README quotes).
//
// Twice: the agents reaching the API server as directly or through kube-proxy (refused while it is
// stopped), then through a TCP load balancer (accepted and closed meanwhile).
func TestClusterAPIServerRestart(t *testing.T) {
	harness.RequireRoot(t)
	t.Run("direct", func(t *testing.T) { apiServerRestart(t, false) })
	t.Run("load-balancer", func(t *testing.T) { apiServerRestart(t, true) })
}

func apiServerRestart(t *testing.T, loadBalancer bool) {
	s := harness.StartKubeAPIServer(t)
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 3})
	nodes := dualStackNodes(t, s, c.Nodes)
	startAgents(t, s, nodes, harness.Unique("nlk"), "routed")
	waitAgents(t, nodes)
	if loadBalancer {
		for _, n := range nodes {
			n.api.LoadBalancer()
		}
	}
	addClusterPods(t, nodes)
	pingAcross(t, nodes, "before the restart")

	routes := map[string]string{}
	watchErrors := map[string]float64{}
	for _, n := range nodes {
		routes[n.name] = n.routes(t)
		if strings.Count(routes[n.name], "\n") != 2*(len(nodes)-1) {
			t.Fatalf("%s: want one route per peer pod CIDR:\n%s", n.name, routes[n.name])
		}
		watchErrors[n.name] = n.metric(t, "netloomd_cluster_watch_errors_total")
	}
	var pings []*harness.PingRun
	for i, from := range nodes {
		for _, a := range nodes[(i+1)%len(nodes)].podAddrs {
			pings = append(pings, harness.StartPing(t, *from.pod, a))
		}
	}
	stream := harness.StartTCPStream(t, *nodes[0].pod, *nodes[1].pod, nodes[1].podAddrs[0], 5001)
	time.Sleep(time.Second) // traffic flowing before the API server goes

	// SIGTERM, then SIGKILL: the API server stops listening at once, the agents' watches end with the kill.
	s.StopAPIServer(t, apiGrace)
	t0 := time.Now() // the kill
	checks := 0
	for time.Since(t0) < apiOutage {
		for _, n := range nodes {
			if r := n.routes(t); r != routes[n.name] {
				t.Errorf("%s: routes changed %s into the outage:\n%s\nwere:\n%s", n.name, time.Since(t0).Round(time.Millisecond), r, routes[n.name])
			}
			if code, body, err := n.agent.AgentGet("/healthz"); err != nil || code != 200 {
				t.Errorf("%s: /healthz %d %q %v during the outage", n.name, code, body, err)
			}
			if code, body, err := n.agent.AgentGet("/readyz"); err != nil || code != 200 {
				t.Errorf("%s: /readyz %d %q %v during the outage: the pod network works, it should stay ready", n.name, code, body, err)
			}
		}
		checks++
		time.Sleep(500 * time.Millisecond)
	}
	for _, n := range nodes {
		if got := n.metric(t, "netloomd_cluster_watch_errors_total"); got <= watchErrors[n.name] {
			t.Errorf("%s: watch errors %v %s after the kill, %v before: the failures are not counted", n.name, got, time.Since(t0).Round(time.Millisecond), watchErrors[n.name])
		}
		if got := n.metric(t, "netloomd_cluster_apiserver_answers"); got != 0 {
			t.Errorf("%s: netloomd_cluster_apiserver_answers %v without an API server", n.name, got)
		}
	}
	t1 := time.Now()
	s.StartAPIServer(t)
	back := time.Now()
	t.Logf("kube-apiserver SIGTERM, SIGKILL %s later, down %s from the kill to its readiness (%s of it starting); routes, /healthz and /readyz checked %d times meanwhile",
		apiGrace, back.Sub(t0).Round(time.Millisecond), back.Sub(t1).Round(time.Millisecond), checks)

	// Catching up: a Node created as soon as the API server is back reaches every node's kernel when
	// that node's agent watches again; deleted once they all have it, it is gone at the speed of a watch.
	extra := spareAddr(nodes)
	createNode(t, s, "node-new", []string{"10.244.7.0/24"}, extra)
	added := untilEach(t, nodes, back, 90*time.Second, "route to node-new", func(n *clusterNode) (bool, string) {
		r := n.routes(t)
		return strings.Contains(r, "10.244.7.0/24 via "+extra.String()), r
	})
	t.Logf("after the restart, a Node created at once is routed, counted from the API server's readiness, by %s", fmtTimes(nodes, added))
	for _, n := range nodes {
		if added[n.name] > apiCatchUp {
			t.Errorf("%s caught up %s after the API server was back, more than %s", n.name, added[n.name].Round(time.Millisecond), apiCatchUp)
		}
	}
	t2 := time.Now()
	if err := s.Client.CoreV1().Nodes().Delete(context.Background(), "node-new", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := untilEach(t, nodes, t2, 30*time.Second, "route to node-new removed", func(n *clusterNode) (bool, string) {
		r := n.routes(t)
		return !strings.Contains(r, "10.244.7.0/24"), r
	})
	t.Logf("then deleted: its route is gone by %s", fmtTimes(nodes, deleted))
	for _, n := range nodes {
		t.Logf("%s: %v watch errors counted", n.name, n.metric(t, "netloomd_cluster_watch_errors_total")-watchErrors[n.name])
		if got := n.metric(t, "netloomd_cluster_apiserver_answers"); got != 1 {
			t.Errorf("%s: netloomd_cluster_apiserver_answers %v once it caught up", n.name, got)
		}
	}

	for _, p := range pings {
		sent, lost := p.Stop(t)
		if len(lost) > 0 || sent < int(apiOutage/(200*time.Millisecond)) {
			t.Errorf("ping %s: %d of %d echo requests lost (icmp_seq %v)", p.What, len(lost), sent, lost)
		} else {
			t.Logf("ping %s: %d echo requests, none lost", p.What, sent)
		}
	}
	written, read, gap, err := stream.Stop()
	if err != nil || read != written || gap > time.Second {
		t.Errorf("TCP %s: %d bytes written, %d read, longest wait %s, error %v", stream.What, written, read, gap, err)
	} else {
		t.Logf("TCP %s: %d bytes, longest wait between reads %s", stream.What, read, gap.Round(time.Millisecond))
	}
	pingAcross(t, nodes, "after the restart")
}

// fmtTimes is "node-0 1.2s, node-1 3.4s, ...".
func fmtTimes(nodes []*clusterNode, took map[string]time.Duration) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, n.name+" "+took[n.name].Round(time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}

// TestClusterWaitsForPodCIDR: an agent whose Node has no pod CIDR yet writes no conflist and is not
// ready, saying why; once the Node gets one, the conflist appears and the agent is ready.
func TestClusterWaitsForPodCIDR(t *testing.T) {
	harness.RequireRoot(t)
	s := harness.StartKubeAPIServer(t)
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 1})
	n := &clusterNode{Node: c.Nodes[0], name: "node-0"}
	createNode(t, s, n.name, nil, n.Addr.Addr())
	startAgents(t, s, []*clusterNode{n}, harness.Unique("nlk"), "routed")
	harness.WaitUntil(t, 20*time.Second, "/readyz says why it is not ready", func() (bool, string) {
		code, body, err := n.agent.AgentGet("/readyz")
		return err == nil && code == 503 && strings.Contains(body, "no spec.podCIDRs"), fmt.Sprintf("%d %q %v", code, body, err)
	})
	if got := n.metric(t, "netloomd_cluster_pod_cidrs_assigned"); got != 0 {
		t.Errorf("pod_cidrs_assigned %v before the Node has one", got)
	}
	if _, err := os.Stat(n.conflist()); err == nil {
		t.Fatal("a conflist was written without a pod CIDR")
	}
	patch := []byte(`{"spec":{"podCIDR":"10.244.5.0/24","podCIDRs":["10.244.5.0/24"]}}`)
	if _, err := s.Client.CoreV1().Nodes().Patch(context.Background(), n.name, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.WaitUntil(t, 20*time.Second, "conflist written and ready", func() (bool, string) {
		code, body, _ := n.agent.AgentGet("/readyz")
		_, err := os.Stat(n.conflist())
		return err == nil && code == 200, fmt.Sprintf("%d %q %v", code, body, err)
	})
	raw, _ := os.ReadFile(n.conflist())
	if !strings.Contains(string(raw), "10.244.5.0/24") {
		t.Errorf("conflist:\n%s", raw)
	}
	if got := n.metric(t, "netloomd_cluster_conflist_writes_total"); got != 1 {
		t.Errorf("conflist written %v times, want once (the resyncs find it unchanged)", got)
	}
}

// TestClusterVXLAN: vxlan mode on two nodes of one segment and one behind a router (see
// testClusterOverlay).
func TestClusterVXLAN(t *testing.T) { testClusterOverlay(t, "vxlan") }

// TestVMClusterIPIP: ipip mode, the same test in the VM lane (this machine's kernel has no ipip): the
// kube-apiserver and etcd run inside the VM too.
func TestVMClusterIPIP(t *testing.T) {
	requireIPIP(t)
	testClusterOverlay(t, "ipip")
}

// testClusterOverlay runs a tunnelled mode on two nodes of one segment and one behind a router: each
// agent writes the overlay plugin's conflist and annotates its Node; pods reach each other through the
// tunnel; a deleted Node's tunnel entries (FDB for vxlan, the route through the device for ipip) leave
// the other nodes (measured).
func testClusterOverlay(t *testing.T, mode string) {
	harness.RequireRoot(t)
	s := harness.StartKubeAPIServer(t)
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2, Remote: 1})
	var nodes []*clusterNode
	for i, hn := range c.Nodes {
		n := &clusterNode{Node: hn, name: fmt.Sprintf("node-%d", i), podCIDRs: []string{fmt.Sprintf("10.244.%d.0/24", i)}}
		createNode(t, s, n.name, n.podCIDRs, hn.Addr.Addr())
		nodes = append(nodes, n)
	}
	startAgents(t, s, nodes, harness.Unique("nlk"), mode)
	waitAgents(t, nodes)
	for i, n := range nodes {
		raw, _ := os.ReadFile(n.conflist())
		if !strings.Contains(string(raw), `"type": "`+mode+`-overlay"`) {
			t.Errorf("%s conflist:\n%s", n.name, raw)
		}
		obj, err := s.Client.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ann := obj.Annotations
		if ann["netloom.io/mode"] != mode || ann["netloom.io/tunnel-ip"] != fmt.Sprintf("10.244.%d.0", i) || (mode == "vxlan") != (ann["netloom.io/vtep-mac"] != "") {
			t.Errorf("%s annotations %v: want netloom.io/mode=%s, its tunnel address, and a VTEP MAC in vxlan mode only", n.name, ann, mode)
		}
	}
	addClusterPods(t, nodes)
	pingAcross(t, nodes, mode)

	// node-2 leaves: the others drop its tunnel entries; the two left still talk.
	entries := func(n *clusterNode) string {
		if mode == "vxlan" {
			return n.Run(t, "bridge", "fdb", "show", "dev", "nlvx.1")
		}
		return n.Run(t, "ip", "route", "show", "dev", "nlipip")
	}
	if !strings.Contains(entries(nodes[0]), nodes[2].Addr.Addr().String()) {
		t.Fatalf("node-0 has no tunnel entry for node-2:\n%s", entries(nodes[0]))
	}
	t0 := time.Now()
	if err := s.Client.CoreV1().Nodes().Delete(context.Background(), "node-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:2] {
		harness.WaitUntil(t, 20*time.Second, n.name+": node-2's tunnel entries removed", func() (bool, string) {
			f := entries(n)
			r := n.Run(t, "ip", "route", "show", "10.244.2.0/24")
			return !strings.Contains(f, nodes[2].Addr.Addr().String()) && strings.TrimSpace(r) == "", f + r
		})
	}
	t.Logf("%s: Node deleted: its tunnel entries are gone from the others after %s", mode, time.Since(t0).Round(time.Millisecond))
	pingAcross(t, nodes[:2], "after node-2 left")
}

// TestClusterBGP: bgp mode on three nodes of segment A and one of segment B, with BIRD on the router
// between them (AS 65000) as each segment's top-of-rack router, selected by a node label. The agents'
// speakers mesh the nodes of segment A over iBGP (AS 64512), refuse to mesh across the router, and
// peer with their segment's router, which carries the routes between the segments. Pods on every node
// reach each other; a node joining and leaving changes one session on each other node (measured); an
// agent stopped keeps its node's routes on its peers (graceful restart) and in its own kernel.
func TestClusterBGP(t *testing.T) {
	harness.RequireRoot(t)
	s := harness.StartKubeAPIServer(t)
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 3, Remote: 1})
	var nodes []*clusterNode
	for i, hn := range c.Nodes {
		n := &clusterNode{Node: hn, name: fmt.Sprintf("node-%d", i), podCIDRs: []string{fmt.Sprintf("10.244.%d.0/24", i)}}
		nodes = append(nodes, n)
	}
	segment := func(n *clusterNode) string {
		if n.Gateway == c.Nodes[0].Gateway {
			return "a"
		}
		return "b"
	}
	addNode := func(n *clusterNode) {
		createNode(t, s, n.name, n.podCIDRs, n.Addr.Addr())
		patch := fmt.Sprintf(`{"metadata":{"labels":{"netloom.test/segment":%q}}}`, segment(n))
		if _, err := s.Client.CoreV1().Nodes().Patch(context.Background(), n.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// The router: BIRD, eBGP with every node, routes learned into its kernel.
	spec := harness.BGPSpec{RouterID: c.Nodes[0].Gateway, ASN: 65000, ExportToKernel: true}
	for _, n := range nodes {
		spec.Neighbors = append(spec.Neighbors, harness.BGPNeighbor{Address: n.Addr.Addr(), ASN: 64512, HoldTime: 9 * time.Second})
	}
	birdConf, err := harness.BIRDConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	bird := harness.StartBIRD(t, c.Router, birdConf)

	network := harness.Unique("nlk")
	bgpConf := map[string]any{"bgp": map[string]any{"holdTime": 9, "neighbors": []map[string]any{
		{"address": c.Nodes[0].Gateway.String(), "asn": 65000, "allowOwnAS": 1, "holdTime": 9, "nodeSelector": "netloom.test/segment=a"},
		{"address": c.Nodes[3].Gateway.String(), "asn": 65000, "allowOwnAS": 1, "holdTime": 9, "nodeSelector": "netloom.test/segment=b"},
	}}}
	// node-2 joins later.
	first := []*clusterNode{nodes[0], nodes[1], nodes[3]}
	for _, n := range first {
		addNode(n)
	}
	start := time.Now()
	startAgents(t, s, first, network, "bgp", bgpConf)
	waitAgents(t, first)
	for _, n := range first {
		bird.WaitSessionUp(t, n.Addr.Addr(), 30*time.Second)
	}
	t.Logf("three agents ready and their router sessions up %s after start", time.Since(start).Round(time.Millisecond))
	bgpRoutes := func(n *clusterNode) string { return n.Run(t, "ip", "route", "show", "proto", "79") }
	// waitSessions waits until n's speaker has want sessions established (the mesh's and the router's).
	waitSessions := func(n *clusterNode, want int) {
		t.Helper()
		harness.WaitUntil(t, 30*time.Second, fmt.Sprintf("%s: %d BGP sessions established", n.name, want), func() (bool, string) {
			got := n.metric(t, `netloomd_cluster_bgp_sessions{state="established"}`)
			return got == float64(want), fmt.Sprint(got)
		})
	}
	waitRoute := func(n *clusterNode, dst, via string) {
		t.Helper()
		harness.WaitUntil(t, 30*time.Second, fmt.Sprintf("%s: route to %s via %s", n.name, dst, via), func() (bool, string) {
			r := bgpRoutes(n)
			return strings.Contains(r, dst+" via "+via), r
		})
	}
	// Sessions: node-0 and node-1 with each other and the router, node-3 with the router only.
	waitSessions(nodes[0], 2)
	waitSessions(nodes[1], 2)
	waitSessions(nodes[3], 1)
	// Segment A's nodes reach each other directly (the mesh), segment B through the router.
	waitRoute(nodes[0], "10.244.1.0/24", nodes[1].Addr.Addr().String())
	waitRoute(nodes[1], "10.244.0.0/24", nodes[0].Addr.Addr().String())
	waitRoute(nodes[0], "10.244.3.0/24", nodes[0].Gateway.String())
	waitRoute(nodes[3], "10.244.0.0/24", nodes[3].Gateway.String())
	if got := nodes[3].metric(t, `netloomd_cluster_peers{state="refused"}`); got != 2 {
		t.Errorf("node-3 (behind the router) refused to mesh with %v peers, want 2", got)
	}
	for _, n := range first {
		raw, _ := os.ReadFile(n.conflist())
		if !strings.Contains(string(raw), `"type": "bgp-route"`) {
			t.Errorf("%s conflist:\n%s", n.name, raw)
		}
	}
	addClusterPods(t, first)
	pingAcross(t, first, "bgp")

	// node-2 joins: its Node, then its agent. Each other node of segment A adds one session.
	before := nodes[0].metric(t, "netloomd_cluster_route_changes_total")
	t0 := time.Now()
	addNode(nodes[2])
	startAgents(t, s, nodes[2:3], network, "bgp", bgpConf)
	for _, n := range []*clusterNode{nodes[0], nodes[1]} {
		waitRoute(n, "10.244.2.0/24", nodes[2].Addr.Addr().String())
	}
	waitRoute(nodes[3], "10.244.2.0/24", nodes[3].Gateway.String())
	waitSessions(nodes[0], 3)
	waitSessions(nodes[1], 3)
	waitSessions(nodes[2], 3)
	t.Logf("node-2 joined: its pod CIDR routed on every node %s after its Node was created (agent start and BGP included)", time.Since(t0).Round(time.Millisecond))
	if got := nodes[0].metric(t, "netloomd_cluster_route_changes_total") - before; got != 1 {
		t.Errorf("node-0 made %v changes for node-2 joining, want 1 (one session)", got)
	}
	addClusterPods(t, nodes[2:3])
	pingAcross(t, nodes, "after node-2 joined")

	// node-1's agent stops (an upgrade): its peers keep its routes through graceful restart, its own
	// kernel keeps the routes it learned, and the pods keep talking. Started again, it takes over.
	waitRoute(nodes[1], "10.244.0.0/24", nodes[0].Addr.Addr().String())
	waitRoute(nodes[1], "10.244.3.0/24", nodes[1].Gateway.String())
	nodes[1].agent.Stop(t)
	time.Sleep(3 * time.Second)
	if r := bgpRoutes(nodes[0]); !strings.Contains(r, "10.244.1.0/24 via "+nodes[1].Addr.Addr().String()) {
		t.Errorf("node-0 dropped node-1's route while node-1's agent restarts:\n%s", r)
	}
	if r := bgpRoutes(nodes[1]); !strings.Contains(r, "10.244.0.0/24") || !strings.Contains(r, "10.244.3.0/24") {
		t.Errorf("node-1 lost its learned routes when its agent stopped:\n%s", r)
	}
	pingAcross(t, nodes, "node-1's agent stopped")
	nodes[1].agent.Restart(t)
	// The new speaker adopts the routes it finds while its sessions come back.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r := bgpRoutes(nodes[1]); !strings.Contains(r, "10.244.0.0/24") || !strings.Contains(r, "10.244.3.0/24") {
			t.Fatalf("node-1's routes went while its new agent started:\n%s", r)
		}
	}
	waitAgents(t, nodes[1:2])
	bird.WaitSessionUp(t, nodes[1].Addr.Addr(), 30*time.Second)
	pingAcross(t, nodes, "node-1's agent back")

	// node-2 leaves: agent gone, Node deleted. Its routes leave the others.
	nodes[2].agent.Stop(t)
	t0 = time.Now()
	if err := s.Client.CoreV1().Nodes().Delete(context.Background(), nodes[2].name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*clusterNode{nodes[0], nodes[1], nodes[3]} {
		harness.WaitUntil(t, 30*time.Second, n.name+": node-2's route withdrawn", func() (bool, string) {
			r := bgpRoutes(n)
			return !strings.Contains(r, "10.244.2.0/24"), r
		})
	}
	t.Logf("node-2 left: its route gone from every node %s after its Node was deleted", time.Since(t0).Round(time.Millisecond))
}

// TestClusterConflistTemplate: with conflistTemplate the agent writes the user's conflist (here the
// mode's bridge, then tuning setting a sysctl, then portmap), and a pod added through it gets what
// each plugin does.
func TestClusterConflistTemplate(t *testing.T) {
	harness.RequireRoot(t)
	s := harness.StartKubeAPIServer(t)
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 1})
	n := &clusterNode{Node: c.Nodes[0], name: "node-0", podCIDRs: []string{"10.244.7.0/24"}}
	createNode(t, s, n.name, n.podCIDRs, n.Addr.Addr())
	tmpl := filepath.Join(t.TempDir(), "conflist.tmpl")
	if err := os.WriteFile(tmpl, []byte(`{"cniVersion": "{{.CNIVersion}}", "name": "{{.NetworkName}}", "plugins": [
  {{.MainPlugin}},
  {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	startAgents(t, s, []*clusterNode{n}, harness.Unique("nlk"), "routed", map[string]any{"conflistTemplate": tmpl})
	waitAgents(t, []*clusterNode{n})
	raw, _ := os.ReadFile(n.conflist())
	for _, want := range []string{`"type":"bridge"`, `"subnet":"10.244.7.0/24"`, `"type": "tuning"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("conflist lacks %s:\n%s", want, raw)
		}
	}
	addClusterPods(t, []*clusterNode{n})
	if got := strings.TrimSpace(n.pod.Run(t, "sysctl", "-n", "net.ipv4.conf.eth0.accept_redirects")); got != "0" {
		t.Errorf("the template's tuning did not run: accept_redirects %q", got)
	}
	if len(n.podAddrs) != 1 || !netip.MustParsePrefix("10.244.7.0/24").Contains(n.podAddrs[0]) {
		t.Errorf("pod addresses %v, want one from 10.244.7.0/24", n.podAddrs)
	}
}
