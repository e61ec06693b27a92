package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/ipam"
	"github.com/netloom/netloom/test/harness"
)

// faultNet is the chain a Kubernetes node runs: bridge (with host-local and ipMasq) and portmap, both
// on one firewall backend; IPv4, or IPv4 and IPv6.
type faultNet struct {
	*bridgeNet
	backend string
}

func newFaultNet(t *testing.T, backend string, dualStack bool) *faultNet {
	t.Helper()
	requirePortmapBackend(t, backend)
	b := newBridgeNet(t, dualStack)
	b.Extra["ipMasq"] = true
	b.Extra["ipMasqBackend"] = backend
	return &faultNet{bridgeNet: b, backend: backend}
}

func (f *faultNet) conflist() []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": f.Name, "plugins": []any{
		f.plugin(),
		map[string]any{"type": "portmap", "backend": f.backend, "capabilities": map[string]bool{"portMappings": true}},
	}})
	return out
}

// pluginConf is one plugin's config as libcni would pipe it, with prevResult when prev is not nil.
func (f *faultNet) pluginConf(typ string, caps map[string]any, prev any) []byte {
	var p map[string]any
	if typ == "bridge" {
		p = f.plugin()
	} else {
		p = map[string]any{"type": "portmap", "backend": f.backend, "runtimeConfig": caps}
	}
	p["cniVersion"], p["name"] = "1.1.0", f.Name
	if prev != nil {
		p["prevResult"] = prev
	}
	out, _ := json.Marshal(p)
	return out
}

// leftovers lists what an attachment of container id left behind on the node: bridge ports, the
// pod's interface, leases, firewall lines naming the container or the network, and files in the
// dataDir other than the lock and the last-reserved markers.
func (f *faultNet) leftovers(t *testing.T, id string, pod *harness.NetNS) []string {
	t.Helper()
	var out []string
	if p := f.ports(t); len(p) != 0 {
		out = append(out, fmt.Sprintf("bridge ports %v", p))
	}
	if pod != nil {
		if s, err := pod.Exec("ip", "-o", "link", "show", "eth0"); err == nil {
			// ip may warn on stderr ("Peer netns reference is invalid"): keep the link's own line.
			for line := range strings.SplitSeq(s, "\n") {
				if strings.Contains(line, "eth0") {
					out = append(out, "pod interface "+strings.Join(strings.Fields(line), " "))
				}
			}
		}
	}
	if l := f.leases(t); len(l) != 0 {
		out = append(out, fmt.Sprintf("leases %v", l))
	}
	if r := firewallLines(id); r != "" {
		out = append(out, fmt.Sprintf("%d firewall lines naming the container:\n%s", strings.Count(r, "\n")+1, r))
	}
	if r := masqRulesFor(t, f.Name); r != "" {
		out = append(out, fmt.Sprintf("%d firewall lines naming the network (masquerade, portmap):\n%s", strings.Count(r, "\n")+1, r))
	}
	if s := strayFiles(t, f.DataDir, "fill"); len(s) != 0 {
		out = append(out, fmt.Sprintf("files in the dataDir %v", s))
	}
	return out
}

// firewallLines returns every line of the node's nftables ruleset and of all iptables tables (both
// families) that mentions s.
func firewallLines(s string) string {
	var out []string
	for _, cmd := range [][]string{{"nft", "list", "ruleset"}, {"iptables-save"}, {"ip6tables-save"}} {
		b, _ := exec.Command(cmd[0], cmd[1:]...).Output()
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, s) {
				out = append(out, strings.TrimSpace(line))
			}
		}
	}
	return strings.Join(out, "\n")
}

// strayFiles lists the files under dataDir other than host-local's lock, index and last_reserved_ip.* files
// and those named in allowed.
func strayFiles(t *testing.T, dataDir string, allowed ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || name == "lock" || name == ipam.IndexFile || strings.HasPrefix(name, "last_reserved_ip.") {
			return nil
		}
		for _, a := range allowed {
			if name == a {
				return nil
			}
		}
		rel, _ := filepath.Rel(dataDir, path)
		out = append(out, rel)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// noPanic fails t when err says a plugin panicked (plugin dispatch reports "internal error
// (please report)") or died of a signal. Code 999 alone is no sign of either: it is what a plugin error
// without a CNI code becomes.
func noPanic(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	s := err.Error()
	if strings.Contains(s, "panic") || strings.Contains(s, "please report") || strings.Contains(s, "signal:") {
		t.Errorf("%s: %v (a plugin panicked or was killed)", what, err)
	}
}

// The fault points of the bridge + host-local + portmap chain's ADD, by NETLOOM_FAULT_POINT value: every
// step of each plugin (pkg/plugin.Add), and numbered ones, which count the plugin's fault points
// (bridge:1 is before allocate).
var faultPoints = append(append(append(
	stepPoints("bridge", "plug", "allocate", "spoofCheck", "configureContainer", "setGateways", "masquerade", "finish"),
	stepPoints("portmap", "rules", "localnet", "conntrack")...),
	stepPoints("host-local", "allocate")...),
	"bridge:1", "bridge:5", "portmap:2")

// A plugin killed (kill -9) at any point of ADD leaves no rollback behind it; the runtime's DEL (which
// has no prevResult: libcni caches a result only after the whole list succeeded) and GC must remove
// every trace. The network is dual-stack, so the firewall backends' points between their IPv4 and IPv6
// changes are reached too.
func TestFaultPointsCleanUp(t *testing.T) {
	harness.RequireRoot(t)
	for _, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			f := newFaultNet(t, be, true)
			c := faultChain{
				list:      f.conflist(),
				caps:      capArgs(portMapping{hostPorts(1), 80, "tcp", ""}),
				points:    append(slices.Clone(faultPoints), firewallFaultPoints[be]...),
				leftovers: f.leftovers,
			}
			c.killAtEveryPoint(t, "ctr-fault-"+be)
		})
	}
}

// firewallFaultPoints are the firewall backends' points between their IPv4 and IPv6 changes, by
// backend: the masquerade's (in the bridge's ADD) and portmap's.
var firewallFaultPoints = map[string][]string{
	"iptables": {"bridge:masq-iptables-ipv6", "portmap:portmap-iptables-ipv6"},
}

// summary is the first line of each leftover.
func summary(left []string) string {
	var out []string
	for _, l := range left {
		first, _, _ := strings.Cut(l, "\n")
		first = strings.TrimSuffix(first, ":")
		if len(first) > 60 {
			first = first[:60] + "..."
		}
		out = append(out, first)
	}
	return strings.Join(out, "; ")
}

// mountTmpfs mounts a tmpfs with opts on a fresh directory and unmounts it when t ends.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// A dataDir the plugin cannot write: ADD fails with a CNI error that says so, and leaves nothing.
func TestFaultDataDirReadOnly(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	f := newFaultNet(t, "nftables", false)
	f.DataDir = mountTmpfs(t, "ro,size=64k")
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "fro")
	caps := capArgs(portMapping{hostPorts(1), 80, "tcp", ""})
	_, err := rt.Add(t, f.conflist(), "ctr-fault-ro", pod.Path, "eth0", caps)
	t.Logf("ADD on a read-only dataDir: code %d: %v", conf.Code(err), err)
	if err == nil {
		t.Fatal("ADD on a read-only dataDir succeeded")
	}
	noPanic(t, "ADD on a read-only dataDir", err)
	if c := conf.Code(err); c != conf.CodeIOFailure {
		t.Errorf("ADD on a read-only dataDir: code %d, want %d (I/O failure)", c, conf.CodeIOFailure)
	}
	if err := rt.Del(t, f.conflist(), "ctr-fault-ro", pod.Path, "eth0", caps); err != nil {
		t.Logf("DEL on a read-only dataDir: code %d: %v", conf.Code(err), err)
	}
	if l := f.leftovers(t, "ctr-fault-ro", &pod); len(l) != 0 {
		t.Errorf("left after the failed ADD:\n%s", strings.Join(l, "\n"))
	}
}

// A dataDir on a full filesystem: ADD fails cleanly and leaves nothing, not even a half-written lease.
func TestFaultDataDirFull(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	f := newFaultNet(t, "iptables", false)
	f.DataDir = mountTmpfs(t, "size=32k")
	// Fill it: dd stops at ENOSPC and fails, which is the point.
	_ = exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(f.DataDir, "fill"), "bs=4k").Run()
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "ffu")
	caps := capArgs(portMapping{hostPorts(1), 80, "tcp", ""})
	_, err := rt.Add(t, f.conflist(), "ctr-fault-full", pod.Path, "eth0", caps)
	t.Logf("ADD on a full dataDir: code %d: %v", conf.Code(err), err)
	if err == nil {
		t.Fatal("ADD on a full dataDir succeeded")
	}
	noPanic(t, "ADD on a full dataDir", err)
	if err := rt.Del(t, f.conflist(), "ctr-fault-full", pod.Path, "eth0", caps); err != nil {
		t.Errorf("DEL on a full dataDir: code %d: %v", conf.Code(err), err)
	}
	if l := f.leftovers(t, "ctr-fault-full", &pod); len(l) != 0 {
		t.Errorf("left after the failed ADD:\n%s", strings.Join(l, "\n"))
	}
}

// ADD and DEL of the same attachment racing, as when a runtime gives up on a slow ADD: whatever each
// returns, no plugin panics, and a last DEL leaves nothing.
func TestFaultConcurrentAddDel(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	const rounds = 20
	f := newFaultNet(t, "nftables", false)
	rt := harness.NewRuntime(t)
	list := f.conflist()
	pod := harness.NewNetNS(t, "fcc")
	caps := capArgs(portMapping{hostPorts(1), 80, "tcp", ""})
	const id = "ctr-fault-race"
	var addFail, delFail int
	start := time.Now()
	for i := range rounds {
		var wg sync.WaitGroup
		var addErr, delErr error
		wg.Go(func() { _, addErr = rt.Add(t, list, id, pod.Path, "eth0", caps) })
		wg.Go(func() { delErr = rt.Del(t, list, id, pod.Path, "eth0", caps) })
		wg.Wait()
		noPanic(t, fmt.Sprintf("round %d ADD", i), addErr)
		noPanic(t, fmt.Sprintf("round %d DEL", i), delErr)
		if addErr != nil {
			addFail++
			t.Logf("round %d ADD: %v", i, addErr)
		}
		if delErr != nil {
			delFail++
			t.Logf("round %d DEL: %v", i, delErr)
		}
	}
	t.Logf("%d rounds in %v: %d ADDs and %d DELs failed", rounds, time.Since(start).Round(time.Millisecond), addFail, delFail)
	if err := rt.Del(t, list, id, pod.Path, "eth0", caps); err != nil {
		t.Errorf("last DEL: %v", err)
	}
	if l := f.leftovers(t, id, &pod); len(l) != 0 {
		t.Errorf("left after the last DEL:\n%s", strings.Join(l, "\n"))
	}
}

// DEL with a prevResult that is not a result: a clean error (never a panic) or success; then a DEL
// without prevResult, as a runtime that lost its cache sends, removes everything.
func TestFaultDelBadPrevResult(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	f := newFaultNet(t, "iptables", false)
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "fbp")
	caps := capArgs(portMapping{hostPorts(1), 80, "tcp", ""})
	const id = "ctr-fault-prev"
	if _, err := rt.Add(t, f.conflist(), id, pod.Path, "eth0", caps); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	env := map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": id, "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
	bad := map[string]any{
		"a string":            "garbage",
		"a number":            42,
		"wrong field types":   map[string]any{"cniVersion": "1.1.0", "interfaces": 7, "ips": "x"},
		"unparsable address":  map[string]any{"cniVersion": "1.1.0", "ips": []any{map[string]any{"address": "not-an-ip"}}},
		"interface index out": map[string]any{"cniVersion": "1.1.0", "ips": []any{map[string]any{"address": "10.1.2.3/24", "interface": 99}}},
	}
	for what, prev := range bad {
		for _, typ := range []string{"portmap", "bridge"} {
			// Run each against a live attachment: re-ADD whatever a successful DEL removed.
			if _, err := os.Stat(pod.Path); err == nil && len(f.leases(t)) == 0 {
				if _, err := rt.Add(t, f.conflist(), id, pod.Path, "eth0", caps); err != nil {
					t.Fatalf("re-ADD: %v", err)
				}
			}
			out, err := harness.RunPlugin(t, typ, env, f.pluginConf(typ, caps, prev))
			code := conf.Code(decodeCNIError(out))
			t.Logf("%s DEL with prevResult %s: code %d, %v", typ, what, code, err)
			if err != nil && code != conf.CodeInvalidConfig && code != conf.CodeDecodingFailure {
				t.Errorf("%s DEL with prevResult %s: %v: %s (want success or code 7)", typ, what, err, out)
			}
			if strings.Contains(string(out)+fmt.Sprint(err), "panic") {
				t.Errorf("%s DEL with prevResult %s panicked: %v: %s", typ, what, err, out)
			}
		}
	}
	// Raw garbage where prevResult's JSON should be: the whole config is then no JSON.
	for _, typ := range []string{"portmap", "bridge"} {
		stdin := f.pluginConf(typ, caps, nil)
		stdin = append(stdin[:len(stdin)-1], []byte(`,"prevResult":{"ips":[{"address":}`)...)
		out, err := harness.RunPlugin(t, typ, env, stdin)
		code := conf.Code(decodeCNIError(out))
		t.Logf("%s DEL with unparsable prevResult: code %d, %v", typ, code, err)
		if err == nil || code != conf.CodeDecodingFailure {
			t.Errorf("%s DEL with unparsable prevResult: %v: %s (want code 6)", typ, err, out)
		}
	}
	// The real DEL, without prevResult, in the runtime's order.
	for _, typ := range []string{"portmap", "bridge"} {
		if out, err := harness.RunPlugin(t, typ, env, f.pluginConf(typ, caps, nil)); err != nil {
			t.Errorf("%s DEL without prevResult: %v: %s", typ, err, out)
		}
	}
	if l := f.leftovers(t, id, &pod); len(l) != 0 {
		t.Errorf("left after DEL without prevResult:\n%s", strings.Join(l, "\n"))
	}
}

// decodeCNIError reads a plugin's error JSON from its stdout; nil when there is none.
func decodeCNIError(stdout []byte) error {
	var e types.Error
	if json.Unmarshal(stdout, &e) != nil || e.Code == 0 {
		return nil
	}
	return &e
}

// A node reboots: its pods' namespaces and every link and rule in its own namespace are gone, only
// the leases on disk survive. The runtime's DELs (with netns paths that no longer exist) and GC must
// all succeed and release every lease.
func TestFaultNodeReboot(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	const pods = 5
	f := newFaultNet(t, "nftables", false)
	node := harness.NewNetNS(t, "node")
	rt := harness.NewRuntime(t)
	list := f.conflist()
	base := hostPorts(pods)
	nss := make([]harness.NetNS, pods)
	id := func(i int) string { return fmt.Sprintf("ctr-fault-reboot-%d", i) }
	for i := range nss {
		nss[i] = harness.NewNetNS(t, "frb")
		err := node.Do(func() error {
			_, err := rt.Add(t, list, id(i), nss[i].Path, "eth0", capArgs(portMapping{base + uint16(i), 80, "tcp", ""}))
			return err
		})
		if err != nil {
			t.Fatalf("ADD pod %d on the node: %v", i, err)
		}
	}
	if got := len(f.leases(t)); got != pods {
		t.Fatalf("%d leases before the reboot, want %d", got, pods)
	}
	if out := node.Run(t, "nft", "list", "ruleset"); !strings.Contains(out, id(0)) {
		t.Errorf("no rule in the node's namespace names pod 0 before the reboot:\n%s", out)
	}

	// Reboot: the pods' namespaces and the node's links and rules vanish.
	for i := range nss {
		nss[i].Delete(t)
	}
	node.Delete(t)
	if out, err := exec.Command("ip", "netns", "add", node.Name).CombinedOutput(); err != nil {
		t.Fatalf("recreate the node's namespace: %v: %s", err, out)
	}

	start := time.Now()
	for i := range nss {
		err := node.Do(func() error {
			return rt.Del(t, list, id(i), nss[i].Path, "eth0", capArgs(portMapping{base + uint16(i), 80, "tcp", ""}))
		})
		if err != nil {
			t.Errorf("DEL of pod %d after the reboot: %v", i, err)
		}
	}
	if err := node.Do(func() error { return rt.GCOnly(t, list, []types.GCAttachment{}) }); err != nil {
		t.Errorf("GC after the reboot: %v", err)
	}
	t.Logf("%d DELs and a GC after the reboot: %v", pods, time.Since(start).Round(time.Millisecond))
	if l := f.leases(t); len(l) != 0 {
		t.Errorf("leases left after the reboot's DELs and GC: %v", l)
	}
	if s := strayFiles(t, f.DataDir); len(s) != 0 {
		t.Errorf("files left in the dataDir: %v", s)
	}
	if out := node.Run(t, "nft", "list", "ruleset"); strings.Contains(out, "ctr-fault-reboot") {
		t.Errorf("rules naming the pods in the rebooted node:\n%s", out)
	}
}

// A runtime that repeats an ADD (it timed out waiting for the first, or restarted) must not lose the
// live attachment's lease: the repeated ADD fails, and the pod keeps an address host-local still
// records, so no other pod can be given it.
func TestFaultRepeatedAddKeepsLease(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	f := newFaultNet(t, "nftables", false)
	rt := harness.NewRuntime(t)
	list := f.conflist()
	pod := harness.NewNetNS(t, "frp")
	caps := capArgs(portMapping{hostPorts(1), 80, "tcp", ""})
	const id = "ctr-fault-again"
	if _, err := rt.Add(t, list, id, pod.Path, "eth0", caps); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, id, pod.Path, "eth0", caps) })
	_, err := rt.Add(t, list, id, pod.Path, "eth0", caps)
	t.Logf("repeated ADD: code %d: %v", conf.Code(err), err)
	noPanic(t, "repeated ADD", err)
	if got := f.leases(t); len(got) != 1 {
		t.Errorf("leases after a repeated ADD of a live attachment: %v, want the pod's one (its eth0: %s)",
			got, strings.TrimSpace(pod.Run(t, "ip", "-br", "-4", "addr", "show", "eth0")))
	}
}
