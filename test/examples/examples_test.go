// Package examples runs every network config in conflist-examples/ the way a runtime would, so an
// example that no longer works fails CI instead of a user.
package examples

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

// examplesDir is conflist-examples/ seen from this package's directory, where `go test` runs it.
const examplesDir = "../../conflist-examples"

// subnetSeq numbers the subnets handed out in this process. The examples' own ranges may be in use on
// a developer's node; the tests take 10.214.<n>.0/24 and fd14:<n>::/64, which no other test uses.
type subnetSeq struct {
	sync.Mutex
	n int
}

func (s *subnetSeq) next(t *testing.T) int {
	s.Lock()
	defer s.Unlock()
	s.n++
	if s.n > 255 {
		t.Fatal("more than 255 test subnets in one run")
	}
	return s.n
}

// example is one config file, rewritten so that it can run next to anything else on the node.
type example struct {
	file     string
	conf     []byte   // as libcni gets it
	network  string   // the rewritten network name
	bridges  []string // bridges the config names (removed in cleanup: DEL leaves a bridge in place)
	dataDirs []string
	version  string

	// Overlay examples run on a two-node cluster: each node gets its own copy of the config (its pod
	// CIDR, its IPAM store) with both nodes in a peers file.
	top      map[string]any
	overlays []map[string]any // the overlay plugins' objects inside top
	cluster  *harness.Cluster
	dir      string

	// bgp-route examples run on one node with netloomd (from netloomd.json, without neighbours) as
	// the speaker.
	bgpRoute map[string]any
	netloomd *harness.Daemon
}

// startNetloomd runs netloomd from conflist-examples/netloomd.json on a node of its own, made harmless:
// no neighbours, no listening port, no kernel routes, no metrics endpoint, nothing originated; the
// example's bgp-route talks to it.
func (ex *example) startNetloomd(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(examplesDir, "netloomd.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("netloomd.json: %v", err)
	}
	bgp, _ := cfg["bgp"].(map[string]any)
	if bgp == nil {
		t.Fatal("netloomd.json has no bgp section")
	}
	bgp["neighbors"], bgp["originate"], bgp["listenPort"] = []any{}, []any{}, -1
	delete(cfg, "api")
	delete(cfg, "metrics")
	cfg["installRoutes"] = false
	ex.cluster = harness.NewCluster(t, harness.ClusterSpec{Local: 1})
	ex.netloomd = harness.StartNetloomd(t, ex.cluster.Nodes[0].NetNS, cfg)
	ex.bgpRoute["speaker"] = ex.netloomd.Speaker()
	ex.bgpRoute["stateDir"] = cfg["stateDir"]
}

// overlayPlugins are the plugins whose examples need several nodes.
var overlayPlugins = map[string]bool{"vxlan-overlay": true, "ipip-overlay": true}

// nodes is how many nodes the example runs on: 2 for overlays, 1 (a node namespace with netloomd) for
// bgp-route, else 1 (the host).
func (ex *example) nodes() int {
	if ex.cluster != nil {
		return len(ex.cluster.Nodes)
	}
	return 1
}

// confFor returns node i's config: the example's own, or for an overlay with node i's pod CIDR and
// IPAM store.
func (ex *example) confFor(t *testing.T, i int) []byte {
	if ex.cluster == nil || (len(ex.overlays) == 0 && ex.bgpRoute == nil) {
		return ex.conf
	}
	for _, p := range ex.overlays {
		p["podCIDR"] = fmt.Sprintf("10.216.%d.0/24", i+1)
		p["clusterCIDR"] = "10.216.0.0/16"
		p["peersFile"] = filepath.Join(ex.dir, "peers.json")
		if ipam, ok := p["ipam"].(map[string]any); ok {
			ipam["dataDir"] = filepath.Join(ex.dir, fmt.Sprintf("ipam-%d", i))
		}
	}
	out, err := json.Marshal(ex.top)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// on runs f on node i: inside the node's namespace for an overlay, else on the host.
func (ex *example) on(i int, f func() error) error {
	if ex.cluster == nil {
		return f()
	}
	return ex.cluster.Nodes[i].Do(f)
}

// startCluster builds the overlay example's nodes and their shared peers file, or the bgp-route
// example's node with netloomd.
func (ex *example) startCluster(t *testing.T) {
	if ex.bgpRoute != nil && len(ex.overlays) == 0 {
		ex.startNetloomd(t)
		return
	}
	if len(ex.overlays) == 0 {
		return
	}
	if typ, _ := ex.overlays[0]["type"].(string); typ == "ipip-overlay" {
		harness.RequireKernelFeature(t, "ipip", harness.LinkKindAvailable(t, "ipip", "local", "192.0.2.1"))
	}
	ex.cluster = harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	ex.dir = t.TempDir()
	var peers []map[string]string
	for i, n := range ex.cluster.Nodes {
		peers = append(peers, map[string]string{"nodeIP": n.Addr.Addr().String(), "podCIDR": fmt.Sprintf("10.216.%d.0/24", i+1)})
		ex.dataDirs = append(ex.dataDirs, filepath.Join(ex.dir, fmt.Sprintf("ipam-%d", i)))
	}
	b, _ := json.Marshal(peers)
	if err := os.WriteFile(filepath.Join(ex.dir, "peers.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rewrite gives the config a unique network name, and each plugin a unique bridge, a private
// dataDir and fresh subnets, leaving every other key as the example has it.
func rewrite(t *testing.T, file string, raw []byte, seq *subnetSeq) *example {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatalf("%s is not JSON: %v", file, err)
	}
	ex := &example{file: file, network: harness.Unique("nlex-")}
	ex.version, _ = top["cniVersion"].(string)
	top["name"] = ex.network

	plugins := []any{top}
	if list, ok := top["plugins"].([]any); ok {
		plugins = list
	}
	for i, p := range plugins {
		plugin, ok := p.(map[string]any)
		if !ok {
			t.Fatalf("%s: plugins[%d] is not an object", file, i)
		}
		if _, ok := plugin["bridge"]; ok {
			br := harness.Unique("nlex")
			plugin["bridge"] = br
			ex.bridges = append(ex.bridges, br)
		}
		if typ, _ := plugin["type"].(string); typ == "bgp-route" {
			ex.bgpRoute = plugin
		}
		if typ, _ := plugin["type"].(string); overlayPlugins[typ] {
			ex.overlays = append(ex.overlays, plugin)
			continue // confFor gives it per-node subnets and stores
		}
		if ipam, ok := plugin["ipam"].(map[string]any); ok {
			ex.rewriteIPAM(t, fmt.Sprintf("plugins[%d].ipam", i), ipam, seq)
		}
	}
	out, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	ex.conf = out
	ex.top = top
	return ex
}

func (ex *example) rewriteIPAM(t *testing.T, where string, ipam map[string]any, seq *subnetSeq) {
	t.Helper()
	dir := t.TempDir()
	ipam["dataDir"] = dir
	ex.dataDirs = append(ex.dataDirs, dir)
	n := seq.next(t)
	// A range with a key other than subnet (rangeStart, gateway, ...) fails the test rather than run
	// with addresses outside the subnet it was moved to.
	moveSubnet := func(where string, r map[string]any) {
		for k := range r {
			if k != "subnet" {
				t.Fatalf("%s: %s.%s: examples_test only knows how to move a range's subnet; teach rewriteIPAM this key",
					ex.file, where, k)
			}
		}
		s, _ := r["subnet"].(string)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatalf("%s: %s.subnet %q: %v", ex.file, where, s, err)
		}
		if p.Addr().Is4() {
			r["subnet"] = fmt.Sprintf("10.214.%d.0/24", n)
		} else {
			r["subnet"] = fmt.Sprintf("fd14:%x::/64", n)
		}
	}
	if _, ok := ipam["subnet"]; ok { // host-local's single-range form: the range's keys sit in ipam
		r := map[string]any{}
		for _, k := range []string{"subnet", "rangeStart", "rangeEnd", "gateway"} {
			if v, ok := ipam[k]; ok {
				r[k] = v
			}
		}
		moveSubnet(where, r)
		ipam["subnet"] = r["subnet"]
	}
	sets, _ := ipam["ranges"].([]any)
	for i, set := range sets {
		ranges, _ := set.([]any)
		for j, r := range ranges {
			rm, ok := r.(map[string]any)
			if !ok {
				t.Fatalf("%s: %s.ranges[%d][%d] is not an object", ex.file, where, i, j)
			}
			moveSubnet(fmt.Sprintf("%s.ranges[%d][%d]", where, i, j), rm)
		}
	}
}

// leases lists the addresses leased in the example's IPAM stores.
func (ex *example) leases(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, dir := range ex.dataDirs {
		ents, err := os.ReadDir(filepath.Join(dir, ex.network))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if _, err := netip.ParseAddr(e.Name()); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// pod is one attachment of the example's network.
type pod struct {
	ns          harness.NetNS
	containerID string
	node        int    // the node it runs on (overlay examples)
	conf        []byte // its node's config
	result      *current.Result
}

// addrs are the pod's addresses from its result.
func (p *pod) addrs() []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.result.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		out = append(out, a.Unmap())
	}
	return out
}

// ownLinks are the interfaces the result says were created inside the pod, lo aside.
func (p *pod) ownLinks() []string {
	var out []string
	for _, i := range p.result.Interfaces {
		if i.Sandbox == p.ns.Path && i.Name != "lo" {
			out = append(out, i.Name)
		}
	}
	return out
}

func TestExamples(t *testing.T) {
	harness.RequireRoot(t)
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.conf*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no configs in %s", examplesDir)
	}
	var seq subnetSeq
	for _, file := range files {
		if ext := filepath.Ext(file); ext != ".conf" && ext != ".conflist" {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			runExample(t, rewrite(t, filepath.Base(file), raw, &seq))
		})
	}
}

// runExample attaches two pods, checks they can talk, then CHECK, STATUS, GC and DEL (twice), and
// asserts that DEL left nothing behind.
func runExample(t *testing.T, ex *example) {
	for _, br := range ex.bridges {
		t.Cleanup(func() {
			if l, err := netlink.LinkByName(br); err == nil {
				_ = netlink.LinkDel(l)
			}
		})
	}
	ex.startCluster(t)
	rt := harness.NewRuntime(t)
	pods := []*pod{{ns: harness.NewNetNS(t, "exa"), containerID: "ctr-a"}, {ns: harness.NewNetNS(t, "exb"), containerID: "ctr-b", node: ex.nodes() - 1}}
	for _, p := range pods {
		p.conf = ex.confFor(t, p.node)
		var r types.Result
		err := ex.on(p.node, func() (err error) {
			r, err = rt.Add(t, p.conf, p.containerID, p.ns.Path, "eth0", nil)
			return err
		})
		if err != nil {
			t.Fatalf("ADD %s: %v\nconfig: %s", p.containerID, err, p.conf)
		}
		t.Cleanup(func() {
			_ = ex.on(p.node, func() error { return rt.Del(t, p.conf, p.containerID, p.ns.Path, "eth0", nil) })
		})
		if r.Version() != ex.version {
			t.Errorf("ADD %s: result version %s, want the config's %s", p.containerID, r.Version(), ex.version)
		}
		if p.result, err = current.NewResultFromResult(r); err != nil {
			t.Fatal(err)
		}
		if len(p.result.IPs) == 0 {
			t.Fatalf("ADD %s: result has no IPs: %+v", p.containerID, p.result)
		}
		t.Logf("%s: %v", p.containerID, p.addrs())
	}

	requireTraffic(t, pods)
	if ex.netloomd != nil {
		rib := ex.netloomd.GoBGP(t, "global", "rib")
		for _, p := range pods {
			for _, a := range p.addrs() {
				if !strings.Contains(rib, netip.PrefixFrom(a, a.BitLen()).String()) {
					t.Errorf("netloomd does not announce %s:\n%s", a, rib)
				}
			}
		}
	}
	atLeast := func(v string) bool { ok, _ := version.GreaterThanOrEqualTo(ex.version, v); return ok }
	if atLeast("0.4.0") {
		for _, p := range pods {
			if err := ex.on(p.node, func() error { return rt.Check(t, p.conf, p.containerID, p.ns.Path, "eth0", nil) }); err != nil {
				t.Errorf("CHECK %s: %v", p.containerID, err)
			}
		}
	}
	if atLeast("1.1.0") {
		valid := []types.GCAttachment{{ContainerID: "ctr-a", IfName: "eth0"}, {ContainerID: "ctr-b", IfName: "eth0"}}
		for i := range ex.nodes() {
			conf := ex.confFor(t, i)
			if err := ex.on(i, func() error { return rt.Status(t, conf) }); err != nil {
				t.Errorf("STATUS: %v", err)
			}
			if err := ex.on(i, func() error { return rt.GC(t, conf, valid) }); err != nil {
				t.Errorf("GC with both pods valid: %v", err)
			}
		}
		requireTraffic(t, pods) // GC of live pods must not touch them
	}

	for _, p := range pods {
		for i := range 2 {
			if err := ex.on(p.node, func() error { return rt.Del(t, p.conf, p.containerID, p.ns.Path, "eth0", nil) }); err != nil {
				t.Errorf("DEL #%d %s: %v", i+1, p.containerID, err)
			}
		}
		for _, name := range p.ownLinks() {
			if out, err := p.ns.Exec("ip", "link", "show", name); err == nil {
				t.Errorf("%s: %s still exists after DEL: %s", p.containerID, name, out)
			}
		}
	}
	if l := ex.leases(t); len(l) != 0 {
		t.Errorf("leases left after DEL: %v", l)
	}
	for _, br := range ex.bridges {
		if ports := harness.BridgePorts(t, br); len(ports) != 0 {
			t.Errorf("bridge %s still has ports after DEL: %v", br, ports)
		}
	}
}

// requireTraffic pings every address of each pod from the other one (a loopback address from inside
// its own pod, the only place it is reachable).
func requireTraffic(t *testing.T, pods []*pod) {
	t.Helper()
	for i, to := range pods {
		from := pods[(i+1)%len(pods)]
		for _, a := range to.addrs() {
			src := from
			if a.IsLoopback() {
				src = to
			}
			if err := harness.Ping(t, src.ns, a.String()); err != nil {
				t.Errorf("%s -> %s (%s): %v", src.containerID, to.containerID, a, err)
			}
		}
	}
}
