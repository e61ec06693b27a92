package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/fault"
	"github.com/netloom/netloom/test/harness"
)

// faultChain is a conflist whose ADD a test kills (NETLOOM_FAULT_POINT) at each of its plugins' fault
// points in turn: every step of every plugin's ADD is one (pkg/plugin.Add), as are the firewall
// backends' points between their IPv4 and IPv6 changes.
type faultChain struct {
	list   []byte
	caps   map[string]any
	points []string
	// on is the namespace the runtime runs in: the host's (nil), or a node's.
	on *harness.NetNS
	// env is added to the plugins' environment (e.g. the bus of the node's firewalld).
	env []string
	// leftovers lists what the attachment id (in pod) left on the node; empty when nothing.
	leftovers func(t *testing.T, id string, pod *harness.NetNS) []string
}

func (c faultChain) do(f func() error) error {
	if c.on == nil {
		return f()
	}
	return c.on.Do(f)
}

// killAtEveryPoint kills an ADD at each point, then runs the runtime's DEL (without prevResult: libcni
// caches a result only after the whole list succeeded) and GC, and fails the test for anything left.
// Last, a normal ADD and DEL must still work. Not parallel: libcni gives the plugins this process's
// environment, which is how NETLOOM_FAULT_POINT reaches them.
func (c faultChain) killAtEveryPoint(t *testing.T, prefix string) {
	rt := harness.NewRuntime(t).WithEnv(c.env...)
	for _, point := range c.points {
		t.Run(point, func(t *testing.T) {
			id := prefix + "-" + strings.NewReplacer(":", "-", "_", "-").Replace(point)
			pod := harness.NewNetNS(t, "flt")
			start := time.Now()
			t.Setenv(fault.Env, point)
			err := c.do(func() error { _, err := rt.Add(t, c.list, id, pod.Path, "eth0", c.caps); return err })
			if err := os.Unsetenv(fault.Env); err != nil {
				t.Fatal(err)
			}
			if err == nil || !strings.Contains(err.Error(), "signal: killed") {
				t.Errorf("ADD with %s=%s: %v, want the plugin killed", fault.Env, point, err)
			}
			addTook := time.Since(start)
			left := c.leftovers(t, id, &pod) // evidence that the point is where it says
			start = time.Now()
			if err := c.do(func() error { return rt.Del(t, c.list, id, pod.Path, "eth0", c.caps) }); err != nil {
				t.Errorf("DEL after the kill: %v", err)
			}
			delTook := time.Since(start)
			if err := c.do(func() error { return rt.GCOnly(t, c.list, []types.GCAttachment{}) }); err != nil {
				t.Errorf("GC after the kill: %v", err)
			}
			t.Logf("%s: killed ADD %v, DEL %v, GC %v; the kill left %d kinds of state: %s", point,
				addTook.Round(time.Millisecond), delTook.Round(time.Millisecond), (time.Since(start) - delTook).Round(time.Millisecond),
				len(left), summary(left))
			if l := c.leftovers(t, id, &pod); len(l) != 0 {
				t.Errorf("left after kill at %s, DEL and GC:\n%s", point, strings.Join(l, "\n"))
			}
		})
	}
	pod := harness.NewNetNS(t, "flt")
	id := prefix + "-after"
	if err := c.do(func() error { _, err := rt.Add(t, c.list, id, pod.Path, "eth0", c.caps); return err }); err != nil {
		t.Fatalf("ADD after the faults: %v", err)
	}
	if err := c.do(func() error { return rt.Del(t, c.list, id, pod.Path, "eth0", c.caps) }); err != nil {
		t.Errorf("DEL after the faults: %v", err)
	}
	if l := c.leftovers(t, id, &pod); len(l) != 0 {
		t.Errorf("left after a normal ADD and DEL:\n%s", strings.Join(l, "\n"))
	}
}

// only keeps the points of plugin: in the VM lane, where each kill costs seconds, host-local's points
// (run on the host with macvlan and vxlan-overlay) are not repeated.
func (c faultChain) only(plugin string) faultChain {
	var keep []string
	for _, p := range c.points {
		if strings.HasPrefix(p, plugin+":") {
			keep = append(keep, p)
		}
	}
	c.points = keep
	return c
}

// stepPoints names the fault points of plugin's ADD steps, "done" (after the last) included.
func stepPoints(plugin string, steps ...string) []string {
	var out []string
	for _, s := range append(steps, "done") {
		out = append(out, plugin+":"+s)
	}
	return out
}

// podInterface reports the pod's eth0 when it still has one.
func podInterface(pod *harness.NetNS) []string {
	s, err := pod.Exec("ip", "-o", "link", "show", "eth0")
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, "eth0") {
			out = append(out, "pod interface "+strings.Join(strings.Fields(line), " "))
		}
	}
	return out
}

// linesNaming returns the lines of node's nftables ruleset and iptables tables (both families) that
// mention s.
func linesNaming(node *harness.NetNS, s string) string {
	var out string
	_ = node.Do(func() error { out = firewallLines(s); return nil })
	return out
}

// stackedFaultChain is a stacked link (macvlan, ipvlan) with host-local, killed at every step of both:
// the pod's interface, the lease and nothing else may be left.
func stackedFaultChain(plugin string, list []byte, dataDir, network string) faultChain {
	return faultChain{
		list:   list,
		points: append(stepPoints(plugin, "create", "allocate", "configure"), stepPoints("host-local", "allocate")...),
		leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
			out := podInterface(pod)
			if l := harness.Leases(t, dataDir, network); len(l) != 0 {
				out = append(out, fmt.Sprintf("leases %v", l))
			}
			if s := strayFiles(t, dataDir); len(s) != 0 {
				out = append(out, fmt.Sprintf("files in the dataDir %v", s))
			}
			return out
		},
	}
}

func TestFaultPointsMacvlan(t *testing.T) {
	harness.RequireRoot(t)
	m := newMacvlanNet(t, "bridge")
	stackedFaultChain("macvlan", m.conflist(), m.DataDir, m.Name).killAtEveryPoint(t, "ctr-fault-mv")
}

// TestFaultPointsIpvlan runs in the VM lane (this kernel has no ipvlan).
func TestFaultPointsIpvlan(t *testing.T) {
	harness.RequireKernelFeature(t, "ipvlan", ipvlanAvailable(t))
	v := newIpvlanNet(t, "l2")
	stackedFaultChain("ipvlan", v.conflist(), v.DataDir, v.Name).only("ipvlan").killAtEveryPoint(t, "ctr-fault-iv")
}

// TestFaultPointsLoopback: loopback alone; nothing on the node to leave, DEL and GC must still succeed.
func TestFaultPointsLoopback(t *testing.T) {
	harness.RequireRoot(t)
	list := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"plugins":[{"type":"loopback"}]}`, harness.Unique("lo")))
	c := faultChain{
		list:      list,
		points:    stepPoints("loopback", "up"),
		leftovers: func(*testing.T, string, *harness.NetNS) []string { return nil },
	}
	c.killAtEveryPoint(t, "ctr-fault-lo")
}

// overlayFaultChain is an overlay plugin + host-local with ipMasq on node 0 of o's cluster, killed at
// every step of both. The tunnel and the peer state are shared by the node's pods and stay; the pod's
// veth, lease and masquerade rules must go.
func overlayFaultChain(o *overlayNet) faultChain {
	node := &o.c.Nodes[0].NetNS
	return faultChain{
		list:   o.conflist(0),
		on:     node,
		points: append(stepPoints(o.plugin, "sync", "allocate", "attach", "masquerade"), stepPoints("host-local", "allocate")...),
		leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
			out := podInterface(pod)
			// The pods' host ends are called nlo*; the node's own eth0 is a veth too.
			v, _ := node.Exec("ip", "-o", "link", "show", "type", "veth")
			for line := range strings.SplitSeq(v, "\n") {
				if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], "nlo") {
					out = append(out, "pod veth on the node: "+strings.Join(f[:2], " "))
				}
			}
			if l := harness.Leases(t, o.dataDir(0), o.name); len(l) != 0 {
				out = append(out, fmt.Sprintf("leases %v", l))
			}
			if r := linesNaming(node, id); r != "" {
				out = append(out, "firewall lines naming the container:\n"+r)
			}
			if s := strayFiles(t, o.dataDir(0)); len(s) != 0 {
				out = append(out, fmt.Sprintf("files in the dataDir %v", s))
			}
			return out
		},
	}
}

func TestFaultPointsVXLANOverlay(t *testing.T) {
	harness.RequireRoot(t)
	cl := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	for i, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			o := newOverlayNet(t, cl, "vxlan-overlay", map[string]any{"vni": 50 + i, "ipMasq": true, "ipMasqBackend": be})
			o.writePeers(0, 1)
			overlayFaultChain(o).killAtEveryPoint(t, "ctr-fault-vx-"+be)
		})
	}
}

// TestVMFaultPointsIPIPOverlay runs in the VM lane (this kernel has no ipip).
func TestVMFaultPointsIPIPOverlay(t *testing.T) {
	requireIPIP(t)
	cl := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	o := newOverlayNet(t, cl, "ipip-overlay", map[string]any{"mode": "always", "ipMasq": true})
	o.writePeers(0, 1)
	overlayFaultChain(o).only("ipip-overlay").killAtEveryPoint(t, "ctr-fault-ipip")
}

// TestFaultPointsBGPRoute: bridge + host-local + bgp-route on a node running netloomd. What the pod's
// ADD announced must be withdrawn and its record gone, wherever the ADD died.
func TestFaultPointsBGPRoute(t *testing.T) {
	harness.RequireRoot(t)
	cl := harness.NewCluster(t, harness.ClusterSpec{Local: 1})
	a := newBGPNode(t, cl.Nodes[0], "10.246.7.0/24")
	d := harness.StartNetloomd(t, a.NetNS, a.netloomdConfig(65001))
	a.speaker = d.Speaker()
	c := faultChain{
		list: a.conflist(),
		on:   &a.NetNS,
		points: append(append(stepPoints("bgp-route", "connect", "record", "announce"),
			stepPoints("bridge", "plug", "allocate", "configureContainer", "setGateways", "finish")...), "host-local:allocate"),
		leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
			out := podInterface(pod)
			var ports []string
			_ = a.Do(func() error { ports = harness.BridgePorts(t, "nlbgp0"); return nil })
			if p := ports; len(p) != 0 {
				out = append(out, fmt.Sprintf("bridge ports %v", p))
			}
			if l := harness.Leases(t, filepath.Join(a.dir, "ipam"), a.name); len(l) != 0 {
				out = append(out, fmt.Sprintf("leases %v", l))
			}
			if r, _ := filepath.Glob(filepath.Join(a.stateDir(), a.name, "*")); len(r) != 0 {
				out = append(out, fmt.Sprintf("bgp-route records %v", r))
			}
			// Paths netloomd originates besides the node's pod CIDR: pod /32s announced and not withdrawn.
			for line := range strings.SplitSeq(d.GoBGP(t, "global", "rib", "-a", "ipv4"), "\n") {
				if strings.Contains(line, "10.246.7.") && strings.Contains(line, "/32") {
					out = append(out, "path still announced: "+strings.Join(strings.Fields(line), " "))
				}
			}
			return out
		},
	}
	c.killAtEveryPoint(t, "ctr-fault-bgp")
}
