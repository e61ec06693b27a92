package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/fault"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/test/harness"
)

// tuningNet is bridge + host-local + tuning: the usual way tuning runs, chained after the plugin that
// makes the pod's interface. Its dataDir is private to the test.
type tuningNet struct {
	b       *bridgeNet
	tuning  map[string]any
	dataDir string
}

func newTuningNet(t *testing.T, tuning map[string]any) *tuningNet {
	t.Helper()
	n := &tuningNet{b: newBridgeNet(t, false), tuning: map[string]any{"type": "tuning"}, dataDir: t.TempDir()}
	n.tuning["dataDir"] = n.dataDir
	for k, v := range tuning {
		n.tuning[k] = v
	}
	return n
}

func (n *tuningNet) conflist(cniVersion string) []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": n.b.Name, "plugins": []any{n.b.plugin(), n.tuning}})
	return out
}

// leftovers lists what an attachment of the network left on the node: saved tuning state, bridge
// ports, leases.
func (n *tuningNet) leftovers(t *testing.T) []string {
	t.Helper()
	var out []string
	if f := savedTuningFiles(t, n.dataDir); len(f) != 0 {
		out = append(out, fmt.Sprintf("saved tuning state %v", f))
	}
	if p := n.b.ports(t); len(p) != 0 {
		out = append(out, fmt.Sprintf("bridge ports %v", p))
	}
	if l := n.b.leases(t); len(l) != 0 {
		out = append(out, fmt.Sprintf("leases %v", l))
	}
	return out
}

func savedTuningFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// podLinkAttrs reads the tunable attributes of the pod's interface.
func podLinkAttrs(t *testing.T, pod harness.NetNS, ifName string) link.Attrs {
	t.Helper()
	var a link.Attrs
	if err := pod.Do(func() error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		a = link.AttrsOf(l)
		return nil
	}); err != nil {
		t.Fatalf("pod interface %s: %v", ifName, err)
	}
	return a
}

func podSysctl(t *testing.T, pod harness.NetNS, path string) string {
	t.Helper()
	return strings.TrimSpace(pod.Run(t, "cat", "/proc/sys/"+path))
}

func resultMAC(t *testing.T, r types.Result, ifName string) string {
	t.Helper()
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range res.Interfaces {
		if i.Name == ifName && i.Sandbox != "" {
			return i.Mac
		}
	}
	t.Fatalf("result has no pod interface %s: %+v", ifName, res.Interfaces)
	return ""
}

// The whole set through libcni: sysctls (IFNAME and a literal eth0 key, one outside conf/), the MAC from
// the runtime's "mac" capability, MTU, promiscuous and all-multicast mode, queue length. The pod talks
// to its gateway with its new MAC; CHECK passes, then sees drift; DEL twice leaves nothing.
func TestTuningChain(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	const mac = "0a:58:0a:d5:00:99"
	n := newTuningNet(t, map[string]any{
		"capabilities": map[string]any{"mac": true},
		"sysctl": map[string]string{
			"net.ipv4.conf.IFNAME.arp_notify":   "1",
			"net.ipv4.conf.eth0.accept_local":   "1",
			"net.ipv4.conf.eth0.rp_filter":      "2",
			"net.ipv4.tcp_keepalive_intvl":      "30",
			"net/ipv4/conf/IFNAME/arp_announce": "2",
			"net.ipv4.route.flush":              "1", // write-only
		},
		"mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 2000,
	})
	list := n.conflist("1.1.0")
	caps := map[string]any{"mac": mac}
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "tun")
	r, err := rt.Add(t, list, "ctr-tun", pod.Path, "eth0", caps)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-tun", pod.Path, "eth0", caps) })
	if got := resultMAC(t, r, "eth0"); got != mac {
		t.Errorf("result MAC %s, want %s", got, mac)
	}
	a := podLinkAttrs(t, pod, "eth0")
	if a.MAC.String() != mac || a.MTU != 1400 || !a.Promisc || !a.Allmulti || a.TxQLen != 2000 {
		t.Errorf("pod eth0 %+v", a)
	}
	for path, want := range map[string]string{
		"net/ipv4/conf/eth0/arp_notify": "1", "net/ipv4/conf/eth0/accept_local": "1", "net/ipv4/conf/eth0/rp_filter": "2",
		"net/ipv4/tcp_keepalive_intvl": "30", "net/ipv4/conf/eth0/arp_announce": "2",
	} {
		if got := podSysctl(t, pod, path); got != want {
			t.Errorf("pod %s = %s, want %s", path, got, want)
		}
	}
	if f := savedTuningFiles(t, n.dataDir); len(f) != 1 || f[0] != "ctr-tun_eth0.json" {
		t.Errorf("saved state %v", f)
	}
	gw := n.b.Subnets[0][:strings.LastIndex(n.b.Subnets[0], ".")] + ".1"
	if err := harness.Ping(t, pod, gw); err != nil {
		t.Errorf("pod to its gateway with the new MAC: %v", err)
	}
	// The node learnt the pod's new MAC.
	if out, _ := exec.Command("ip", "neigh", "show", "dev", n.b.Bridge).CombinedOutput(); !strings.Contains(string(out), mac) {
		t.Errorf("the node's neighbour table on %s lacks the pod's MAC %s:\n%s", n.b.Bridge, mac, out)
	}
	if err := rt.Check(t, list, "ctr-tun", pod.Path, "eth0", caps); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	// Drift: CHECK names what differs; put back, CHECK passes again.
	for _, d := range []struct{ set, reset []string }{
		{[]string{"ip", "link", "set", "eth0", "mtu", "1300"}, []string{"ip", "link", "set", "eth0", "mtu", "1400"}},
		{[]string{"sysctl", "-w", "net.ipv4.conf.eth0.arp_notify=0"}, []string{"sysctl", "-w", "net.ipv4.conf.eth0.arp_notify=1"}},
		{[]string{"ip", "link", "set", "eth0", "promisc", "off"}, []string{"ip", "link", "set", "eth0", "promisc", "on"}},
	} {
		pod.Run(t, d.set...)
		if err := rt.Check(t, list, "ctr-tun", pod.Path, "eth0", caps); err == nil {
			t.Errorf("CHECK after %v passed", d.set)
		} else {
			t.Logf("CHECK after %v: %v", d.set, err)
		}
		pod.Run(t, d.reset...)
	}
	if err := rt.Check(t, list, "ctr-tun", pod.Path, "eth0", caps); err != nil {
		t.Errorf("CHECK after putting everything back: %v", err)
	}
	if err := rt.Status(t, list); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	if err := rt.GC(t, list, []types.GCAttachment{{ContainerID: "ctr-tun", IfName: "eth0"}}); err != nil {
		t.Errorf("GC: %v", err)
	}
	if len(savedTuningFiles(t, n.dataDir)) != 1 {
		t.Error("GC removed a live attachment's saved state")
	}
	for i := range 2 {
		if err := rt.Del(t, list, "ctr-tun", pod.Path, "eth0", caps); err != nil {
			t.Errorf("DEL %d: %v", i+1, err)
		}
	}
	if l := n.leftovers(t); len(l) != 0 {
		t.Errorf("left after DEL: %v", l)
	}
}

// vethPod is a namespace holding a veth pair eth0 / nlpeer0 (both ends inside, up): the interface a
// plugin before tuning would have made, for tests that run tuning alone.
func vethPod(t *testing.T) harness.NetNS {
	t.Helper()
	pod := harness.NewNetNS(t, "tun")
	pod.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "nlpeer0")
	pod.Run(t, "ip", "link", "set", "nlpeer0", "up")
	pod.Run(t, "ip", "link", "set", "eth0", "up")
	return pod
}

// tuningStdin is tuning's configuration with keys as a runtime pipes it: cniVersion, name, and a
// prevResult naming the pod's eth0 (none when prev is false).
func tuningStdin(v string, pod harness.NetNS, prev bool, keys map[string]any) []byte {
	m := map[string]any{"cniVersion": v, "name": "tuned", "type": "tuning"}
	if prev {
		m["prevResult"] = map[string]any{
			"cniVersion": v,
			"interfaces": []any{map[string]any{"name": "eth0", "sandbox": pod.Path}},
			"ips":        []any{},
		}
	}
	for k, val := range keys {
		m[k] = val
	}
	out, _ := json.Marshal(m)
	return out
}

// runTuning runs a tuning binary (netloom's "tuning" or a path) once, as a runtime without libcni does.
func runTuning(t *testing.T, binary, command, id string, pod harness.NetNS, cniArgs string, stdin []byte) ([]byte, error) {
	t.Helper()
	env := map[string]string{"CNI_COMMAND": command, "CNI_CONTAINERID": id, "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
	if cniArgs != "" {
		env["CNI_ARGS"] = cniArgs
	}
	return harness.RunPlugin(t, binary, env, stdin)
}

// everyTunable is a configuration changing every interface attribute away from a new veth's defaults.
func everyTunable(dataDir string) map[string]any {
	m := map[string]any{"mac": "0a:58:0a:d5:01:02", "mtu": 1280, "promisc": true, "allmulti": true, "txQLen": 321}
	if dataDir != "" {
		m["dataDir"] = dataDir
	}
	return m
}

func requireTuned(t *testing.T, pod harness.NetNS, mac string, mtu, qlen int) {
	t.Helper()
	a := podLinkAttrs(t, pod, "eth0")
	if a.MAC.String() != mac || a.MTU != mtu || !a.Promisc || !a.Allmulti || a.TxQLen != qlen {
		t.Errorf("pod eth0 after ADD: %+v; want MAC %s MTU %d promisc allmulti txqlen %d", a, mac, mtu, qlen)
	}
}

func requireRestored(t *testing.T, pod harness.NetNS, orig link.Attrs) {
	t.Helper()
	if a := podLinkAttrs(t, pod, "eth0"); a.MAC.String() != orig.MAC.String() || a.MTU != orig.MTU || a.Promisc != orig.Promisc || a.Allmulti != orig.Allmulti || a.TxQLen != orig.TxQLen {
		t.Errorf("pod eth0 after DEL: %+v, want the original %+v", a, orig)
	}
}

// Tuning alone on a pod's veth: the MAC from CNI_ARGS, the MTU from args.cni over the network's, every
// other attribute; DEL puts back the original values and removes the saved file, twice, and once more
// after the namespace is gone.
func TestTuningRestoresOnDel(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	pod := vethPod(t)
	dir := t.TempDir()
	orig := podLinkAttrs(t, pod, "eth0")
	keys := everyTunable(dir)
	keys["args"] = map[string]any{"cni": map[string]any{"mtu": 1300}}
	stdin := tuningStdin("1.0.0", pod, true, keys)
	const mac = "0a:58:0a:d5:01:03"
	out, err := runTuning(t, "tuning", "ADD", "ctr-rst", pod, "IgnoreUnknown=1;K8S_POD_NAME=p;MAC="+mac, stdin)
	if err != nil {
		t.Fatalf("ADD: %v: %s", err, out)
	}
	var res current.Result
	if err := json.Unmarshal(out, &res); err != nil || len(res.Interfaces) != 1 || res.Interfaces[0].Mac != mac || res.CNIVersion != "1.0.0" {
		t.Errorf("ADD result %s (%v)", out, err)
	}
	requireTuned(t, pod, mac, 1300, 321)
	var saved map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "ctr-rst_eth0.json"))
	if err != nil || json.Unmarshal(b, &saved) != nil || saved["mac"] != orig.MAC.String() || saved["mtu"] != float64(orig.MTU) || saved["promisc"] != false || saved["allmulti"] != false || saved["txQLen"] != float64(orig.TxQLen) {
		t.Errorf("saved state %s (%v), want the original %+v", b, err, orig)
	}
	for i := range 2 {
		if out, err := runTuning(t, "tuning", "DEL", "ctr-rst", pod, "", stdin); err != nil {
			t.Errorf("DEL %d: %v: %s", i+1, err, out)
		}
	}
	requireRestored(t, pod, orig)
	if f := savedTuningFiles(t, dir); len(f) != 0 {
		t.Errorf("saved state left: %v", f)
	}
	// A pod that is gone: DEL succeeds and removes the file.
	if out, err := runTuning(t, "tuning", "ADD", "ctr-rst", pod, "", stdin); err != nil {
		t.Fatalf("second ADD: %v: %s", err, out)
	}
	pod.Delete(t)
	if out, err := runTuning(t, "tuning", "DEL", "ctr-rst", pod, "", stdin); err != nil {
		t.Errorf("DEL after the namespace is gone: %v: %s", err, out)
	}
	if f := savedTuningFiles(t, dir); len(f) != 0 {
		t.Errorf("saved state left after DEL of a gone pod: %v", f)
	}
}

// A pod tuned by the reference plugin is CHECKed and restored by netloom's, and the other way round:
// both use the default dataDir and the same file, so a node can switch plugins under running pods.
func TestTuningReferenceInterop(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	ref := filepath.Join(harness.ReferencePlugin(t, "tuning"), "tuning")
	for _, tc := range []struct{ name, add, del string }{
		{"reference ADD, netloom CHECK and DEL", ref, "tuning"},
		{"netloom ADD, reference CHECK and DEL", "tuning", ref},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pod := vethPod(t)
			id := harness.Unique("ctr-ref")
			saved := filepath.Join("/run/cni/tuning", id+"_eth0.json")
			t.Cleanup(func() { _ = os.Remove(saved) })
			orig := podLinkAttrs(t, pod, "eth0")
			keys := everyTunable("")
			keys["sysctl"] = map[string]string{"net.ipv4.conf.IFNAME.arp_notify": "1"}
			stdin := tuningStdin("1.0.0", pod, true, keys)
			out, err := runTuning(t, tc.add, "ADD", id, pod, "", stdin)
			if err != nil {
				t.Fatalf("ADD: %v: %s", err, out)
			}
			requireTuned(t, pod, "0a:58:0a:d5:01:02", 1280, 321)
			if _, err := os.Stat(saved); err != nil {
				t.Errorf("saved state: %v", err)
			}
			// CHECK gets the ADD's result as prevResult, as libcni passes it.
			var prev map[string]any
			if err := json.Unmarshal(out, &prev); err != nil {
				t.Fatal(err)
			}
			keys["prevResult"] = prev
			check := tuningStdin("1.0.0", pod, false, keys)
			if out, err := runTuning(t, tc.del, "CHECK", id, pod, "", check); err != nil {
				t.Errorf("CHECK: %v: %s", err, out)
			}
			if out, err := runTuning(t, tc.del, "DEL", id, pod, "", check); err != nil {
				t.Errorf("DEL: %v: %s", err, out)
			}
			requireRestored(t, pod, orig)
			if _, err := os.Stat(saved); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("saved state after DEL: %v", err)
			}
		})
	}
}

// Every CNI version through libcni: the result in that version with the new MAC, CHECK where the
// version has it, DEL; nothing left.
func TestTuningEveryCNIVersion(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			const mac = "0a:58:0a:d5:02:01"
			n := newTuningNet(t, map[string]any{"mac": mac, "mtu": 1450, "sysctl": map[string]string{"net.ipv4.conf.IFNAME.arp_notify": "1"}})
			list := n.conflist(v)
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "tunv")
			r, err := rt.Add(t, list, "ctr-tunv", pod.Path, "eth0", nil)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if r.Version() != v {
				t.Errorf("result version %s", r.Version())
			}
			if got := resultMAC(t, r, "eth0"); got != mac {
				t.Errorf("result MAC %s, want %s", got, mac)
			}
			if a := podLinkAttrs(t, pod, "eth0"); a.MAC.String() != mac || a.MTU != 1450 {
				t.Errorf("pod eth0 %+v", a)
			}
			if v != "0.3.0" && v != "0.3.1" {
				if err := rt.Check(t, list, "ctr-tunv", pod.Path, "eth0", nil); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if err := rt.Del(t, list, "ctr-tunv", pod.Path, "eth0", nil); err != nil {
				t.Errorf("DEL: %v", err)
			}
			if l := n.leftovers(t); len(l) != 0 {
				t.Errorf("left: %v", l)
			}
		})
	}
}

// CNI_ARGS MAC through libcni, under a runtimeConfig mac: the capability wins, as in the reference.
func TestTuningMACPrecedence(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	n := newTuningNet(t, map[string]any{"capabilities": map[string]any{"mac": true}, "mac": "0a:58:0a:d5:03:01"})
	list := n.conflist("1.0.0")
	rt := harness.NewRuntime(t)
	for _, tc := range []struct {
		name string
		args [][2]string
		caps map[string]any
		want string
	}{
		{"config", nil, nil, "0a:58:0a:d5:03:01"},
		{"CNI_ARGS over config", [][2]string{{"IgnoreUnknown", "1"}, {"MAC", "0a:58:0a:d5:03:02"}}, nil, "0a:58:0a:d5:03:02"},
		{"runtimeConfig over CNI_ARGS", [][2]string{{"MAC", "0a:58:0a:d5:03:02"}}, map[string]any{"mac": "0a:58:0a:d5:03:03"}, "0a:58:0a:d5:03:03"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := harness.NewNetNS(t, "tunm")
			r, err := rt.AddWithArgs(t, list, "ctr-tunm", pod.Path, "eth0", tc.args, tc.caps)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if got, a := resultMAC(t, r, "eth0"), podLinkAttrs(t, pod, "eth0"); got != tc.want || a.MAC.String() != tc.want {
				t.Errorf("result MAC %s, pod MAC %s, want %s", got, a.MAC, tc.want)
			}
			if err := rt.CheckWithArgs(t, list, "ctr-tunm", pod.Path, "eth0", tc.args, tc.caps); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			if err := rt.DelWithArgs(t, list, "ctr-tunm", pod.Path, "eth0", tc.args, tc.caps); err != nil {
				t.Errorf("DEL: %v", err)
			}
			if l := n.leftovers(t); len(l) != 0 {
				t.Errorf("left: %v", l)
			}
		})
	}
}

// tuningErr decodes the CNI error a failed plugin printed.
func tuningErr(t *testing.T, out []byte) types.Error {
	t.Helper()
	var e types.Error
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("not a CNI error: %q", out)
	}
	return e
}

// Bad input: a CNI error with the right code naming the key, nothing changed in the pod (a sysctl
// written before the failing one is put back), no saved state left.
func TestTuningBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, tc := range []struct {
		name    string
		keys    map[string]any
		noPrev  bool
		cniArgs string
		code    uint
		naming  string
	}{
		{name: "sysctl outside net", keys: map[string]any{"sysctl": map[string]string{"kernel.panic": "1"}}, code: 7, naming: `sysctl["kernel.panic"]`},
		{name: "sysctl escaping net", keys: map[string]any{"sysctl": map[string]string{"net/../kernel/panic": "1"}}, code: 7, naming: "net/../kernel/panic"},
		{name: "args.cni sysctl outside net", keys: map[string]any{"args": map[string]any{"cni": map[string]any{"sysctl": map[string]string{"vm.swappiness": "1"}}}}, code: 7, naming: "vm.swappiness"},
		{name: "sysctl the pod lacks, after one that exists", keys: map[string]any{"mtu": 1300, "sysctl": json.RawMessage(`{"net.ipv4.conf.IFNAME.arp_notify":"1","net.ipv4.conf.IFNAME.no_such_thing":"1"}`)}, code: 7, naming: "no_such_thing"},
		{name: "sysctl value the kernel refuses", keys: map[string]any{"sysctl": map[string]string{"net.ipv4.conf.IFNAME.arp_notify": "abc"}}, code: 7, naming: "arp_notify"},
		{name: "duplicated sysctl", keys: map[string]any{"sysctl": json.RawMessage(`{"net.ipv4.conf.IFNAME.arp_notify":"1","net.ipv4.conf.IFNAME.arp_notify":"0"}`)}, code: 7, naming: "twice"},
		{name: "bad mac", keys: map[string]any{"mac": "0a:58"}, code: 7, naming: "mac"},
		{name: "bad CNI_ARGS MAC", keys: map[string]any{}, cniArgs: "MAC=01:00:5e:00:00:01", code: 7, naming: "CNI_ARGS MAC"},
		{name: "mtu out of range", keys: map[string]any{"mtu": 10}, code: 7, naming: "mtu"},
		{name: "negative txQLen", keys: map[string]any{"txQLen": -5}, code: 7, naming: "txQLen"},
		{name: "no prevResult", noPrev: true, keys: map[string]any{"mtu": 1300}, code: 7, naming: "prevResult"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pod := vethPod(t)
			dir := t.TempDir()
			orig := podLinkAttrs(t, pod, "eth0")
			tc.keys["dataDir"] = dir
			out, err := runTuning(t, "tuning", "ADD", "ctr-bad", pod, tc.cniArgs, tuningStdin("1.0.0", pod, !tc.noPrev, tc.keys))
			if err == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			if e := tuningErr(t, out); e.Code != tc.code || !strings.Contains(e.Msg, tc.naming) {
				t.Errorf("error %+v, want code %d naming %q", e, tc.code, tc.naming)
			}
			requireRestored(t, pod, orig)
			if got := podSysctl(t, pod, "net/ipv4/conf/eth0/arp_notify"); got != "0" {
				t.Errorf("arp_notify left at %s", got)
			}
			if f := savedTuningFiles(t, dir); len(f) != 0 {
				t.Errorf("saved state left: %v", f)
			}
		})
	}
}

// A chain whose tuning refuses its configuration: ADD fails, and the runtime's DEL still runs the whole
// chain (tuning's DEL reads only dataDir), so the bridge port and the lease go.
func TestTuningBadConfigChainCleansUp(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	n := newTuningNet(t, map[string]any{"sysctl": map[string]string{"kernel.panic": "1"}, "mac": "zz"})
	list := n.conflist("1.1.0")
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "tunb")
	if _, err := rt.Add(t, list, "ctr-tunb", pod.Path, "eth0", nil); err == nil {
		t.Fatal("ADD succeeded")
	} else if !strings.Contains(err.Error(), "kernel.panic") && !strings.Contains(err.Error(), "mac") {
		t.Errorf("ADD error %v names neither key", err)
	}
	if err := rt.Del(t, list, "ctr-tunb", pod.Path, "eth0", nil); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if l := n.leftovers(t); len(l) != 0 {
		t.Errorf("left: %v", l)
	}
}

// The node's allow-list (/etc/cni/tuning/allowlist.conf, the reference's path): a key it lists is
// written, one it does not is refused with code 7 naming it. Not parallel: the file is the node's, and
// every tuning ADD reads it; the node's own file, if any, is put back.
func TestTuningAllowlist(t *testing.T) {
	harness.RequireRoot(t)
	const file = "/etc/cni/tuning/allowlist.conf"
	old, err := os.ReadFile(file)
	had := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	_, dirErr := os.Stat(filepath.Dir(file))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if had {
			_ = os.WriteFile(file, old, 0o644)
			return
		}
		_ = os.Remove(file)
		if errors.Is(dirErr, os.ErrNotExist) {
			_ = os.Remove(filepath.Dir(file))
		}
	})
	if err := os.WriteFile(file, []byte("^net\\.ipv4\\.conf\\.IFNAME\\.arp_notify$\n\n^net\\.core\\.somaxconn$\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		sysctl map[string]string
		naming string // "": allowed
	}{
		{"listed", map[string]string{"net.ipv4.conf.IFNAME.arp_notify": "1", "net.core.somaxconn": "256"}, ""},
		{"not listed", map[string]string{"net.ipv4.conf.IFNAME.arp_notify": "1", "net.ipv4.conf.IFNAME.accept_local": "1"}, `sysctl["net.ipv4.conf.IFNAME.accept_local"]`},
		{"listed only with IFNAME", map[string]string{"net.ipv4.conf.eth0.arp_notify": "1"}, "net.ipv4.conf.eth0.arp_notify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := vethPod(t)
			stdin := tuningStdin("1.0.0", pod, true, map[string]any{"dataDir": t.TempDir(), "sysctl": tc.sysctl})
			out, err := runTuning(t, "tuning", "ADD", "ctr-allow", pod, "", stdin)
			if tc.naming == "" {
				if err != nil {
					t.Fatalf("ADD: %v: %s", err, out)
				}
				if got := podSysctl(t, pod, "net/core/somaxconn"); got != "256" {
					t.Errorf("somaxconn = %s", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			if e := tuningErr(t, out); e.Code != 7 || !strings.Contains(e.Msg, tc.naming) || !strings.Contains(e.Msg, file) {
				t.Errorf("error %+v, want code 7 naming %q and the file", e, tc.naming)
			}
			if got := podSysctl(t, pod, "net/ipv4/conf/eth0/arp_notify"); got != "0" {
				t.Errorf("a refused ADD wrote arp_notify=%s", got)
			}
		})
	}
}

// Killed at every step of its ADD, tuning leaves at most its saved state, which the runtime's DEL
// (without prevResult) uses and removes; the bridge's DEL still runs after it.
func TestFaultPointsTuning(t *testing.T) {
	harness.RequireRoot(t)
	n := newTuningNet(t, map[string]any{"mac": "0a:58:0a:d5:04:01", "mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 100,
		"sysctl": map[string]string{"net.ipv4.conf.IFNAME.arp_notify": "1"}})
	faultChain{
		list:   n.conflist("1.1.0"),
		points: stepPoints("tuning", "sysctl", "save", "mac", "promisc", "mtu", "allmulti", "txqlen"),
		leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
			return append(podInterface(pod), n.leftovers(t)...)
		},
	}.killAtEveryPoint(t, "ctr-fault-tun")
}

// Killed half way through ADD, tuning alone on a pod's veth: the runtime's DEL puts back what the
// saved file recorded, whatever of it the killed ADD had changed already.
func TestTuningKilledAddRestoredByDel(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, point := range []string{"tuning:mac", "tuning:mtu", "tuning:txqlen", "tuning:done"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			pod := vethPod(t)
			dir := t.TempDir()
			orig := podLinkAttrs(t, pod, "eth0")
			stdin := tuningStdin("1.1.0", pod, true, everyTunable(dir))
			env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-kill", "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0", fault.Env: point}
			if out, err := harness.RunPlugin(t, "tuning", env, stdin); err == nil || !strings.Contains(err.Error(), "signal: killed") {
				t.Fatalf("ADD with %s: %v: %s, want the plugin killed", point, err, out)
			}
			if f := savedTuningFiles(t, dir); len(f) != 1 {
				t.Errorf("saved state after the kill: %v", f)
			}
			if out, err := runTuning(t, "tuning", "DEL", "ctr-kill", pod, "", stdin); err != nil {
				t.Errorf("DEL: %v: %s", err, out)
			}
			requireRestored(t, pod, orig)
			if f := savedTuningFiles(t, dir); len(f) != 0 {
				t.Errorf("saved state left: %v", f)
			}
		})
	}
}
