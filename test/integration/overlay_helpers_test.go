package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/test/harness"
)

// overlayNet is one overlay network (vxlan-overlay or ipip-overlay) over a cluster of node namespaces:
// node i owns pod CIDR podCIDR(i), every node reads the same peers file, and each node's plugins run
// inside its namespace as the node's runtime would run them.
type overlayNet struct {
	t       *testing.T
	c       *harness.Cluster
	rt      *harness.Runtime
	plugin  string
	name    string
	dir     string
	extra   map[string]any // more plugin keys, the same on every node
	v6Pods  bool
	v6Under bool // nodes talk over their IPv6 underlay addresses
}

func newOverlayNet(t *testing.T, c *harness.Cluster, plugin string, extra map[string]any) *overlayNet {
	o := &overlayNet{t: t, c: c, rt: harness.NewRuntime(t), plugin: plugin, name: harness.Unique("ovl"), dir: t.TempDir(), extra: extra}
	return o
}

func (o *overlayNet) clusterCIDR() string {
	if o.v6Pods {
		return "fd44::/48"
	}
	return "10.244.0.0/16"
}

func (o *overlayNet) podCIDR(i int) string {
	if o.v6Pods {
		return fmt.Sprintf("fd44:0:0:%x::/64", i+1)
	}
	return fmt.Sprintf("10.244.%d.0/24", i+1)
}

func (o *overlayNet) nodeIP(i int) netip.Addr {
	if o.v6Under {
		return o.c.Nodes[i].Addr6.Addr()
	}
	return o.c.Nodes[i].Addr.Addr()
}

func (o *overlayNet) peersFile() string { return filepath.Join(o.dir, "peers.json") }

// writePeers lists nodes (indexes into the cluster) in the peers file; the file lists each node itself
// too, as one file shared by every node does.
func (o *overlayNet) writePeers(nodes ...int) {
	var list []map[string]string
	for _, i := range nodes {
		list = append(list, map[string]string{"nodeIP": o.nodeIP(i).String(), "podCIDR": o.podCIDR(i)})
	}
	b, _ := json.Marshal(list)
	if err := os.WriteFile(o.peersFile(), b, 0o600); err != nil {
		o.t.Fatal(err)
	}
}

func (o *overlayNet) pluginConf(i int) map[string]any {
	p := map[string]any{
		"type":        o.plugin,
		"podCIDR":     o.podCIDR(i),
		"clusterCIDR": o.clusterCIDR(),
		"peersFile":   o.peersFile(),
		"ipam":        map[string]any{"type": "host-local", "dataDir": o.dataDir(i)},
	}
	if o.v6Under {
		p["nodeIP"] = o.nodeIP(i).String()
	}
	for k, v := range o.extra {
		p[k] = v
	}
	return p
}

func (o *overlayNet) dataDir(i int) string { return filepath.Join(o.dir, fmt.Sprintf("ipam-%d", i)) }

func (o *overlayNet) conflist(i int) []byte {
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": o.name, "plugins": []any{o.pluginConf(i)}})
	return b
}

// conflistFile writes node i's conflist to a file, for `netloom overlay sync`.
func (o *overlayNet) conflistFile(i int) string {
	p := filepath.Join(o.dir, fmt.Sprintf("node%d.conflist", i))
	if err := os.WriteFile(p, o.conflist(i), 0o600); err != nil {
		o.t.Fatal(err)
	}
	return p
}

// overlayPod is a pod attached on one node.
type overlayPod struct {
	harness.NetNS
	node int
	id   string
	ip   netip.Addr
}

func (o *overlayNet) addPod(t *testing.T, node int) *overlayPod {
	t.Helper()
	p := &overlayPod{NetNS: harness.NewNetNS(t, "opod"), node: node, id: harness.Unique("ctr")}
	var res *types100.Result
	err := o.c.Nodes[node].Do(func() error {
		r, err := o.rt.Add(t, o.conflist(node), p.id, p.Path, "eth0", nil)
		if err != nil {
			return err
		}
		res, err = types100.NewResultFromResult(r)
		return err
	})
	if err != nil {
		t.Fatalf("ADD on node %d: %v", node, err)
	}
	if len(res.IPs) == 0 {
		t.Fatalf("ADD on node %d: no IP in %+v", node, res)
	}
	p.ip, _ = netip.AddrFromSlice(res.IPs[0].Address.IP)
	p.ip = p.ip.Unmap()
	if !netip.MustParsePrefix(o.podCIDR(node)).Contains(p.ip) {
		t.Fatalf("pod on node %d got %s, outside %s", node, p.ip, o.podCIDR(node))
	}
	return p
}

func (o *overlayNet) delPod(t *testing.T, p *overlayPod) {
	t.Helper()
	if err := o.c.Nodes[p.node].Do(func() error { return o.rt.Del(t, o.conflist(p.node), p.id, p.Path, "eth0", nil) }); err != nil {
		t.Fatalf("DEL on node %d: %v", p.node, err)
	}
}

func (o *overlayNet) checkPod(t *testing.T, p *overlayPod) error {
	t.Helper()
	return o.c.Nodes[p.node].Do(func() error { return o.rt.Check(t, o.conflist(p.node), p.id, p.Path, "eth0", nil) })
}

// sync runs `netloom overlay sync` on node i, as an operator or a timer would.
func (o *overlayNet) sync(t *testing.T, i int, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(harness.PluginDir(t), "netloom")
	return o.c.Nodes[i].Exec(append([]string{bin, "overlay", "sync", "--conflist", o.conflistFile(i)}, args...)...)
}

// pingAll pings every pod from every other pod.
func pingAll(t *testing.T, pods []*overlayPod) {
	t.Helper()
	for _, a := range pods {
		for _, b := range pods {
			if a != b {
				if err := harness.Ping(t, a.NetNS, b.ip.String()); err != nil {
					t.Errorf("pod on node %d -> pod %s on node %d: %v", a.node, b.ip, b.node, err)
				}
			}
		}
	}
}

// nodeState is what a node's kernel holds for the overlay: routes of netloom's overlay protocol, and
// the tunnel device's permanent neighbour and FDB entries, as `ip` and `bridge` print them.
func nodeState(t *testing.T, n *harness.Node, device string) (routes, neigh, fdb string) {
	t.Helper()
	routes = n.Run(t, "ip", "route", "show", "proto", "78") + n.Run(t, "ip", "-6", "route", "show", "proto", "78")
	if _, err := n.Exec("ip", "link", "show", device); err != nil {
		return routes, "", ""
	}
	neigh = n.Run(t, "ip", "neigh", "show", "dev", device, "nud", "permanent") + n.Run(t, "ip", "-6", "neigh", "show", "dev", device, "nud", "permanent")
	if out, err := n.Exec("bridge", "fdb", "show", "dev", device); err == nil {
		fdb = out
	}
	return routes, neigh, fdb
}

// hostVeths lists the pods' host-side veths on node n.
func hostVeths(t *testing.T, n *harness.Node) []string {
	var out []string
	for _, line := range strings.Split(n.Run(t, "ip", "-o", "link", "show", "type", "veth"), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], "nlo") {
			out = append(out, strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
		}
	}
	return out
}

// peerAddr parses what a harness.Serve server answering "$SOCAT_PEERADDR" sends back: the client's
// address as its IPv6 socket saw it, e.g. "[0000:...:ffff:0af4:0102]" for 10.244.1.2.
func peerAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(strings.Trim(strings.TrimSpace(s), "[]"))
	return a.Unmap()
}

// delAllLeavesNothing deletes every pod (twice: DEL is idempotent) and checks that no node keeps a host
// veth, a lease or a route to a pod, while the tunnel device stays for the next pod.
func (o *overlayNet) delAllLeavesNothing(t *testing.T, pods []*overlayPod, device string) {
	t.Helper()
	for _, p := range pods {
		o.delPod(t, p)
		o.delPod(t, p)
	}
	for i, n := range o.c.Nodes {
		if v := hostVeths(t, n); len(v) != 0 {
			t.Errorf("node %d: host veths left: %v", i, v)
		}
		if l := harness.Leases(t, o.dataDir(i), o.name); len(l) != 0 {
			t.Errorf("node %d: leases left: %v", i, l)
		}
		// The pods' host routes are /32s (/128s) on their veths; the peers' routes (proto 78) stay.
		if r := n.Run(t, "ip", "route", "show", "root", o.clusterCIDR()); strings.Contains(r, " dev nlo") {
			t.Errorf("node %d: pod routes left:\n%s", i, r)
		}
		if _, err := n.Exec("ip", "link", "show", device); err != nil {
			t.Errorf("node %d: DEL of the last pod removed the tunnel, which the next pod needs at once: %v", i, err)
		}
	}
}
