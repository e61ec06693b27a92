// Package examples runs every network config in conflist-examples/ the way a runtime would, so an
// example that no longer works fails CI instead of a user.
package examples

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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
		if ipam, ok := plugin["ipam"].(map[string]any); ok {
			ex.rewriteIPAM(t, fmt.Sprintf("plugins[%d].ipam", i), ipam, seq)
		}
	}
	out, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	ex.conf = out
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
	rt := harness.NewRuntime(t)
	pods := []*pod{{ns: harness.NewNetNS(t, "exa"), containerID: "ctr-a"}, {ns: harness.NewNetNS(t, "exb"), containerID: "ctr-b"}}
	for _, p := range pods {
		r, err := rt.Add(t, ex.conf, p.containerID, p.ns.Path, "eth0", nil)
		if err != nil {
			t.Fatalf("ADD %s: %v\nconfig: %s", p.containerID, err, ex.conf)
		}
		t.Cleanup(func() { _ = rt.Del(t, ex.conf, p.containerID, p.ns.Path, "eth0", nil) })
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
	atLeast := func(v string) bool { ok, _ := version.GreaterThanOrEqualTo(ex.version, v); return ok }
	if atLeast("0.4.0") {
		for _, p := range pods {
			if err := rt.Check(t, ex.conf, p.containerID, p.ns.Path, "eth0", nil); err != nil {
				t.Errorf("CHECK %s: %v", p.containerID, err)
			}
		}
	}
	if atLeast("1.1.0") {
		if err := rt.Status(t, ex.conf); err != nil {
			t.Errorf("STATUS: %v", err)
		}
		valid := []types.GCAttachment{{ContainerID: "ctr-a", IfName: "eth0"}, {ContainerID: "ctr-b", IfName: "eth0"}}
		if err := rt.GC(t, ex.conf, valid); err != nil {
			t.Errorf("GC with both pods valid: %v", err)
		}
		requireTraffic(t, pods) // GC of live pods must not touch them
	}

	for _, p := range pods {
		for i := range 2 {
			if err := rt.Del(t, ex.conf, p.containerID, p.ns.Path, "eth0", nil); err != nil {
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
