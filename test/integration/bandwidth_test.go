package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/shaping"
	"github.com/netloom/netloom/test/harness"
)

// bwNet is a ptp network (with host-local) chained with bandwidth: a unique name, so the ifb names
// (derived from it) are unique too.
type bwNet struct {
	*ptpNet
	bw map[string]any // the bandwidth plugin's keys besides "type"
}

func newBwNet(t *testing.T, bw map[string]any) *bwNet {
	t.Helper()
	p := newPtpNet(t, false)
	p.Name = harness.Unique("bw")
	return &bwNet{ptpNet: p, bw: bw}
}

func (b *bwNet) bandwidthPlugin() map[string]any {
	m := map[string]any{"type": "bandwidth"}
	maps.Copy(m, b.bw)
	return m
}

func (b *bwNet) conflist(cniVersion string) []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": b.Name,
		"plugins": []any{b.plugin(), b.bandwidthPlugin()}})
	return out
}

// bandwidthConf is the bandwidth plugin's own config as a runtime hands it over, with prevResult.
func (b *bwNet) bandwidthConf(cniVersion string, prev types.Result) []byte {
	m := b.bandwidthPlugin()
	m["cniVersion"], m["name"] = cniVersion, b.Name
	if prev != nil {
		m["prevResult"] = prev
	}
	out, _ := json.Marshal(m)
	return out
}

func (b *bwNet) ifb(id string) string { return shaping.IfbName(b.Name, id) }

// leftovers lists what attachment id left on the node: its ifb, any ifb aliased to the network, the
// ptp network's addresses and routes, and leases. Empty when nothing.
func (b *bwNet) leftovers(t *testing.T, id string) []string {
	t.Helper()
	out := b.nodeState(t)
	if l, err := netlink.LinkByName(b.ifb(id)); err == nil {
		out = append(out, fmt.Sprintf("ifb %s (alias %q)", l.Attrs().Name, l.Attrs().Alias))
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, shaping.IfbAlias(b.Name, "")) {
			out = append(out, fmt.Sprintf("link %s aliased %q", l.Attrs().Name, l.Attrs().Alias))
		}
	}
	if l := b.leases(t); len(l) != 0 {
		out = append(out, fmt.Sprintf("leases %v", l))
	}
	return out
}

// requireNothingLeft waits for the kernel to finish removing a deleted namespace's veth, then fails
// for anything of attachment id still on the node.
func (b *bwNet) requireNothingLeft(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(b.leftovers(t, id)) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if l := b.leftovers(t, id); len(l) != 0 {
		t.Errorf("left on the node:\n%s", strings.Join(l, "\n"))
	}
}

// bwAdd ADDs attachment id and DELs it in the test's cleanup.
func bwAdd(t *testing.T, rt *harness.Runtime, list []byte, id string, pod harness.NetNS, caps map[string]any) *current.Result {
	t.Helper()
	r, err := rt.Add(t, list, id, pod.Path, "eth0", caps)
	if err != nil {
		t.Fatalf("ADD %s: %v", id, err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, id, pod.Path, "eth0", caps) })
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// rootTBF returns the root tbf qdisc of the link called name, or nil.
func rootTBF(t *testing.T, name string) *netlink.Tbf {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	qs, err := netlink.QdiscList(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if tbf, ok := q.(*netlink.Tbf); ok && q.Attrs().Parent == netlink.HANDLE_ROOT {
			return tbf
		}
	}
	return nil
}

// redirectsTo reports whether the ingress of the link called host has a mirred redirect to ifb.
func redirectsTo(t *testing.T, host, ifb string) bool {
	t.Helper()
	h, err := netlink.LinkByName(host)
	if err != nil {
		t.Fatalf("link %s: %v", host, err)
	}
	i, err := netlink.LinkByName(ifb)
	if err != nil {
		return false
	}
	fs, _ := netlink.FilterList(h, netlink.MakeHandle(0xffff, 0))
	for _, f := range fs {
		if u, ok := f.(*netlink.U32); ok {
			for _, a := range u.Actions {
				if m, ok := a.(*netlink.MirredAction); ok && m.Ifindex == i.Attrs().Index {
					return true
				}
			}
		}
	}
	return false
}

// limits is ingress and egress rate and burst, in bits, as bandwidth keys.
func limits(inRate, inBurst, outRate, outBurst uint64) map[string]any {
	return map[string]any{"ingressRate": inRate, "ingressBurst": inBurst, "egressRate": outRate, "egressBurst": outBurst}
}

// The kernel after ADD is the reference's layout with the rates asked; CHECK sees drift; DEL twice
// leaves nothing.
func TestBandwidthKernelState(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBwNet(t, limits(10_000_000, 1_000_000, 20_000_000, 2_000_000))
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	pod := harness.NewNetNS(t, "bws")
	res := bwAdd(t, rt, list, "ctr-bw-state", pod, nil)

	ifb := b.ifb("ctr-bw-state")
	if len(res.Interfaces) != 3 || res.Interfaces[2].Name != ifb || res.Interfaces[2].Sandbox != "" || res.Interfaces[2].Mac == "" {
		t.Fatalf("result interfaces %+v, want ptp's two then the ifb %s", res.Interfaces, ifb)
	}
	host := res.Interfaces[0].Name
	hl, _ := netlink.LinkByName(host)
	il, err := netlink.LinkByName(ifb)
	if err != nil || il.Type() != "ifb" || il.Attrs().MTU != hl.Attrs().MTU || il.Attrs().Flags&1 == 0 {
		t.Fatalf("ifb %s: %v %+v", ifb, err, il)
	}
	if tbf := rootTBF(t, host); tbf == nil || tbf.Rate != 1_250_000 || tbf.Handle != netlink.MakeHandle(1, 0) {
		t.Errorf("host end %s root tbf %+v, want rate 1250000 bytes/s handle 1:", host, tbf)
	}
	if tbf := rootTBF(t, ifb); tbf == nil || tbf.Rate != 2_500_000 || tbf.Handle != netlink.MakeHandle(1, 0) {
		t.Errorf("ifb root tbf %+v, want rate 2500000 bytes/s handle 1:", tbf)
	}
	if !redirectsTo(t, host, ifb) {
		t.Errorf("%s's ingress does not redirect to %s", host, ifb)
	}
	t.Logf("tc qdisc:\n%s%s", tcShow(host), tcShow(ifb))
	if err := rt.Check(t, list, "ctr-bw-state", pod.Path, "eth0", nil); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if err := rt.Status(t, list); err != nil {
		t.Errorf("STATUS: %v", err)
	}

	t.Run("CHECK sees a missing ifb", func(t *testing.T) {
		if err := netlink.LinkDel(il); err != nil {
			t.Fatal(err)
		}
		if err := rt.Check(t, list, "ctr-bw-state", pod.Path, "eth0", nil); err == nil || !strings.Contains(err.Error(), "egressRate") {
			t.Errorf("CHECK without the ifb: %v, want an error naming egressRate", err)
		}
	})
	t.Run("CHECK sees a changed rate", func(t *testing.T) {
		if out, err := exec.Command("tc", "qdisc", "replace", "dev", host, "root", "handle", "1:", "tbf", "rate", "5mbit", "burst", "10kb", "latency", "25ms").CombinedOutput(); err != nil {
			t.Fatalf("tc: %v: %s", err, out)
		}
		if err := rt.Check(t, list, "ctr-bw-state", pod.Path, "eth0", nil); err == nil || !strings.Contains(err.Error(), "ingressRate") {
			t.Errorf("CHECK after the rate changed: %v, want an error naming ingressRate", err)
		}
	})
	delTwice(t, rt, list, "ctr-bw-state", pod, "eth0", nil)
	b.requireNothingLeft(t, "ctr-bw-state")
}

func tcShow(dev string) string {
	out, _ := exec.Command("tc", "qdisc", "show", "dev", dev).CombinedOutput()
	return string(out)
}

// An iperf3 TCP flow from and to a shaped pod is held to the rate asked in each direction (given
// through the bandwidth capability, as kubelet's annotations are); a pod without limits is not.
func TestBandwidthLimitsTraffic(t *testing.T) {
	harness.RequireRoot(t)
	const inRate, outRate = 10_000_000, 20_000_000
	b := newBwNet(t, map[string]any{"capabilities": map[string]bool{"bandwidth": true}})
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	shaped, free := harness.NewNetNS(t, "bwa"), harness.NewNetNS(t, "bwb")
	caps := map[string]any{"bandwidth": map[string]any{"ingressRate": inRate, "ingressBurst": 1_000_000, "egressRate": outRate, "egressBurst": 1_000_000}}
	resA := bwAdd(t, rt, list, "ctr-bw-a", shaped, caps)
	resB := bwAdd(t, rt, list, "ctr-bw-b", free, nil)
	if len(resA.Interfaces) != 3 || len(resB.Interfaces) != 2 {
		t.Fatalf("interfaces: shaped pod %d, free pod %d; want 3 (with the ifb) and 2", len(resA.Interfaces), len(resB.Interfaces))
	}
	a, bAddr := podAddrs(t, resA)[0].Addr().String(), podAddrs(t, resB)[0].Addr().String()
	requireRate(t, "egress (shaped pod sends)", measureRate(t, "shaped -> free", free, shaped, bAddr), outRate)
	requireRate(t, "ingress (shaped pod receives)", measureRate(t, "free -> shaped", shaped, free, a), inRate)

	// The free pod's traffic to the node is not held: well above either limit.
	node := harness.NewNetNS(t, "bwc")
	resC := bwAdd(t, rt, list, "ctr-bw-c", node, nil)
	c := podAddrs(t, resC)[0].Addr().String()
	if got := measureRate(t, "free -> another free pod", node, free, c); got < 3*outRate {
		t.Errorf("unshaped flow %.2f Mbit/s: not clearly above the limits, the measurement proves nothing", got/1e6)
	}
}

// Every cniVersion the reference accepts: ADD (the ifb in the result), CHECK where the version has
// it, DEL twice, nothing left.
func TestBandwidthEveryCNIVersion(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, ver := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(ver, func(t *testing.T) {
			t.Parallel()
			b := newBwNet(t, limits(8_000_000, 800_000, 8_000_000, 800_000))
			rt := harness.NewRuntime(t)
			list := b.conflist(ver)
			pod := harness.NewNetNS(t, "bwv")
			id := "ctr-bw-v" + strings.ReplaceAll(ver, ".", "")
			res := bwAdd(t, rt, list, id, pod, nil)
			if len(res.Interfaces) != 3 || res.Interfaces[2].Name != b.ifb(id) {
				t.Errorf("result interfaces %+v", res.Interfaces)
			}
			if ver >= "0.4.0" {
				if err := rt.Check(t, list, id, pod.Path, "eth0", nil); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			delTwice(t, rt, list, id, pod, "eth0", nil)
			b.requireNothingLeft(t, id)
		})
	}
}

// Pods shaped by the reference plugin survive the switch to netloom: netloom's CHECK accepts what the
// reference made and its DEL removes all of it; the other way round too.
func TestBandwidthReferenceInterop(t *testing.T) {
	harness.RequireRoot(t)
	ref := harness.ReferencePlugin(t, "bandwidth")
	for _, tc := range []struct {
		name       string
		add, check string // which bandwidth ADDs and which CHECKs: "reference" or "netloom"
	}{
		{"reference ADD, netloom CHECK and DEL", "reference", "netloom"},
		{"netloom ADD, reference CHECK", "netloom", "reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A CRI runtime's "no burst limit" (2^32-1 bits) ingress, and a plain egress limit.
			b := newBwNet(t, limits(5_000_000, 1<<32-1, 3_000_000, 500_000))
			list := b.conflist("1.0.0")
			rtAdd := harness.NewRuntime(t)
			if tc.add == "reference" {
				rtAdd = harness.NewRuntimeWithPath(t, ref, harness.PluginDir(t))
			}
			pod := harness.NewNetNS(t, "bwr")
			id := "ctr-bw-ref"
			r, err := rtAdd.Add(t, list, id, pod.Path, "eth0", nil)
			if err != nil {
				t.Fatalf("%s ADD: %v", tc.add, err)
			}
			t.Cleanup(func() { _ = harness.NewRuntime(t).Del(t, list, id, pod.Path, "eth0", nil) })
			checker := "bandwidth"
			if tc.check == "reference" {
				checker = filepath.Join(ref, "bandwidth")
			}
			env := map[string]string{"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": id, "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
			if out, err := harness.RunPlugin(t, checker, env, b.bandwidthConf("1.0.0", r)); err != nil {
				t.Fatalf("%s CHECK of the %s's ADD: %v: %s", tc.check, tc.add, err, out)
			}
			// netloom's DEL, from a runtime that has no cached result (a node that switched suites).
			delTwice(t, harness.NewRuntime(t), list, id, pod, "eth0", nil)
			b.requireNothingLeft(t, id)
		})
	}
}

// GC removes the ifb of an attachment the runtime no longer lists, keeps a listed one, leaves another
// network's alone, and removes an orphaned ifb the reference made.
func TestBandwidthGC(t *testing.T) {
	harness.RequireRoot(t)
	b := newBwNet(t, limits(0, 0, 8_000_000, 800_000))
	other := newBwNet(t, limits(0, 0, 8_000_000, 800_000))
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	pod := harness.NewNetNS(t, "bwg")
	bwAdd(t, rt, list, "ctr-bw-gc", pod, nil)
	ifb := b.ifb("ctr-bw-gc")
	exists := func(name string) bool { _, err := netlink.LinkByName(name); return err == nil }

	if err := rt.GCOnly(t, list, []types.GCAttachment{{ContainerID: "ctr-bw-gc", IfName: "eth0"}}); err != nil || !exists(ifb) {
		t.Fatalf("GC listing the pod: %v; ifb there: %v", err, exists(ifb))
	}
	if err := rt.GCOnly(t, other.conflist("1.1.0"), []types.GCAttachment{}); err != nil || !exists(ifb) {
		t.Fatalf("another network's GC: %v; ifb there: %v", err, exists(ifb))
	}
	if err := rt.GCOnly(t, list, []types.GCAttachment{}); err != nil || exists(ifb) {
		t.Fatalf("GC without the pod: %v; ifb still there: %v", err, exists(ifb))
	}

	t.Run("orphan of the reference", func(t *testing.T) {
		rtRef := harness.NewRuntimeWithPath(t, harness.ReferencePlugin(t, "bandwidth"), harness.PluginDir(t))
		pod := harness.NewNetNS(t, "bwo")
		if _, err := rtRef.Add(t, list, "ctr-bw-orph", pod.Path, "eth0", nil); err != nil {
			t.Fatalf("reference ADD: %v", err)
		}
		orphan := b.ifb("ctr-bw-orph")
		harness.RemoveLinkOnCleanup(t, orphan)
		// A live pod's ifb (redirected to) survives a GC that does not list it when it has no alias.
		if err := rt.GCOnly(t, list, []types.GCAttachment{}); err != nil || !exists(orphan) {
			t.Fatalf("GC while the reference's pod lives: %v; ifb there: %v", err, exists(orphan))
		}
		pod.Delete(t) // the pod dies without DEL: its veth goes, the ifb stays
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := rt.GCOnly(t, list, []types.GCAttachment{})
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			if !exists(orphan) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("orphaned ifb %s survives GC", orphan)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := rt.GC(t, list, []types.GCAttachment{}); err != nil {
			t.Errorf("GC (release the lease): %v", err)
		}
	})
}

// Bad input: a CNI error with the right code naming the key, never a panic, nothing made.
func TestBandwidthBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	pod := harness.NewNetNS(t, "bwx")
	prev := map[string]any{"cniVersion": "1.0.0", "interfaces": []any{map[string]any{"name": "vethnone"}, map[string]any{"name": "eth0", "sandbox": pod.Path}}}
	conf := func(edit func(m map[string]any)) []byte {
		m := map[string]any{"cniVersion": "1.0.0", "name": "bwbad", "type": "bandwidth", "prevResult": prev,
			"ingressRate": 1000, "ingressBurst": 1000}
		edit(m)
		out, _ := json.Marshal(m)
		return out
	}
	for _, c := range []struct {
		name   string
		cmd    string
		stdin  []byte
		env    map[string]string
		code   int
		naming string
	}{
		{name: "invalid JSON", stdin: []byte(`{"cniVersion":"1.0.0","name":`), code: 6, naming: "JSON"},
		{name: "unknown cniVersion", stdin: conf(func(m map[string]any) { m["cniVersion"] = "9.9.9" }), code: 1, naming: "9.9.9"},
		{name: "rate without burst", stdin: conf(func(m map[string]any) { delete(m, "ingressBurst") }), code: 7, naming: "ingressBurst"},
		{name: "burst without rate", stdin: conf(func(m map[string]any) { m["egressBurst"] = 1000 }), code: 7, naming: "egressRate"},
		{name: "burst of 4 GiB", stdin: conf(func(m map[string]any) { m["ingressBurst"] = uint64(1) << 35 }), code: 7, naming: "ingressBurst"},
		{name: "rate under a byte", stdin: conf(func(m map[string]any) { m["ingressRate"] = 4 }), code: 7, naming: "ingressRate"},
		{name: "negative rate", stdin: conf(func(m map[string]any) { m["ingressRate"] = -1 }), code: 7, naming: "ingressRate"},
		{name: "rate as a string", stdin: conf(func(m map[string]any) { m["ingressRate"] = "10mbit" }), code: 7, naming: "ingressRate"},
		{name: "runtimeConfig burst without rate", stdin: conf(func(m map[string]any) {
			delete(m, "ingressRate")
			delete(m, "ingressBurst")
			m["runtimeConfig"] = map[string]any{"bandwidth": map[string]any{"egressBurst": 100}}
		}), code: 7, naming: "runtimeConfig.bandwidth.egressRate"},
		{name: "no prevResult", stdin: conf(func(m map[string]any) { delete(m, "prevResult") }), code: 7, naming: "prevResult"},
		{name: "CHECK without prevResult", cmd: "CHECK", stdin: conf(func(m map[string]any) { delete(m, "prevResult") }), code: 7, naming: "prevResult"},
		{name: "pod has no such interface", stdin: conf(func(map[string]any) {}), code: 7, naming: "eth0"},
		{name: "netns does not exist", stdin: conf(func(map[string]any) {}), env: map[string]string{"CNI_NETNS": "/var/run/netns/netloom-no-such-ns"}, code: 4, naming: "CNI_NETNS"},
		{name: "container ID with slash", stdin: conf(func(map[string]any) {}), env: map[string]string{"CNI_CONTAINERID": "../x"}, code: 4, naming: "containerID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := c.cmd
			if cmd == "" {
				cmd = "ADD"
			}
			env := map[string]string{"CNI_COMMAND": cmd, "CNI_CONTAINERID": "ctr-bw-bad", "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
			maps.Copy(env, c.env)
			out, err := harness.RunPlugin(t, "bandwidth", env, c.stdin)
			if err == nil {
				t.Fatalf("exit status 0 for bad input; stdout: %s", out)
			}
			var e struct {
				Code    int    `json:"code"`
				Msg     string `json:"msg"`
				Details string `json:"details"`
			}
			if jerr := json.Unmarshal(out, &e); jerr != nil {
				t.Fatalf("stdout is not a CNI error JSON (%v): %q", jerr, out)
			}
			if e.Code != c.code || !strings.Contains(e.Msg+" "+e.Details, c.naming) {
				t.Errorf("code %d %q, want code %d naming %q", e.Code, e.Msg, c.code, c.naming)
			}
			if strings.Contains(string(out), "panic") {
				t.Errorf("panic on stdout: %s", out)
			}
			if _, err := netlink.LinkByName(shaping.IfbName("bwbad", "ctr-bw-bad")); err == nil {
				t.Errorf("ifb created by a failed ADD")
			}
		})
	}
}

// faultChain kills each step of bandwidth's ADD of the network in turn; what counts as left over is
// the pod's eth0 and what leftovers lists.
func (b *bwNet) faultChain() faultChain {
	return faultChain{
		list:   b.conflist("1.1.0"),
		points: stepPoints("bandwidth", "ingress", "ifb", "redirect", "egress"),
		leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
			return append(podInterface(pod), b.leftovers(t, id)...)
		},
	}
}

// Each step of bandwidth's ADD killed in turn: DEL and GC leave nothing of the attachment.
func TestFaultPointsBandwidth(t *testing.T) {
	harness.RequireRoot(t)
	newBwNet(t, limits(8_000_000, 800_000, 8_000_000, 800_000)).faultChain().killAtEveryPoint(t, "ctr-fault-bw")
}

// The same with the htb layout (unshapedSubnets).
func TestFaultPointsBandwidthSubnets(t *testing.T) {
	harness.RequireRoot(t)
	bw := limits(8_000_000, 800_000, 8_000_000, 800_000)
	bw["unshapedSubnets"] = []string{"10.0.0.0/8", "fd00::/8"}
	newBwNet(t, bw).faultChain().killAtEveryPoint(t, "ctr-fault-bws")
}

// unshapedSubnets: the shaped pod's traffic with a peer in the list is not held, with any other peer
// it is, both ways; the htb layout passes CHECK and goes with DEL.
func TestBandwidthUnshapedSubnets(t *testing.T) {
	harness.RequireRoot(t)
	const inRate, outRate = 10_000_000, 20_000_000
	b := newBwNet(t, map[string]any{"capabilities": map[string]bool{"bandwidth": true}})
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	shapedPeer, freePeer, pod := harness.NewNetNS(t, "bwp"), harness.NewNetNS(t, "bwf"), harness.NewNetNS(t, "bwu")
	resS := bwAdd(t, rt, list, "ctr-bw-peer", shapedPeer, nil)
	resF := bwAdd(t, rt, list, "ctr-bw-free", freePeer, nil)
	free := podAddrs(t, resF)[0].Addr()
	caps := map[string]any{"bandwidth": map[string]any{"ingressRate": inRate, "ingressBurst": 1_000_000, "egressRate": outRate, "egressBurst": 1_000_000,
		"unshapedSubnets": []string{free.String() + "/32"}}}
	res := bwAdd(t, rt, list, "ctr-bw-uns", pod, caps)
	if err := rt.Check(t, list, "ctr-bw-uns", pod.Path, "eth0", caps); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	host := res.Interfaces[0].Name
	t.Logf("tc:\n%s%s", tcShow(host), tcShow(b.ifb("ctr-bw-uns")))
	a, peer := podAddrs(t, res)[0].Addr().String(), podAddrs(t, resS)[0].Addr().String()

	for _, c := range []struct {
		what           string
		server, client harness.NetNS
		addr           string
		want           float64 // 0: not held
	}{
		{"pod -> shaped peer", shapedPeer, pod, peer, outRate},
		{"shaped peer -> pod", pod, shapedPeer, a, inRate},
		{"pod -> unshaped peer", freePeer, pod, free.String(), 0},
		{"unshaped peer -> pod", pod, freePeer, a, 0},
	} {
		got := measureRate(t, c.what, c.server, c.client, c.addr)
		switch {
		case c.want == 0 && got < 3*outRate:
			t.Errorf("%s: %.2f Mbit/s, want well above the limits", c.what, got/1e6)
		case c.want != 0:
			requireRate(t, c.what, got, c.want)
		}
	}
	// CHECK sees a subnet filter gone.
	if out, err := exec.Command("tc", "filter", "del", "dev", b.ifb("ctr-bw-uns"), "parent", "1:", "prio", "16").CombinedOutput(); err != nil {
		t.Fatalf("tc filter del: %v: %s", err, out)
	}
	if err := rt.Check(t, list, "ctr-bw-uns", pod.Path, "eth0", caps); err == nil || !strings.Contains(err.Error(), "egressRate") {
		t.Errorf("CHECK without the ifb's filter: %v, want an error naming egressRate", err)
	}
	delTwice(t, rt, list, "ctr-bw-uns", pod, "eth0", caps)
	if _, err := netlink.LinkByName(b.ifb("ctr-bw-uns")); err == nil {
		t.Error("ifb left after DEL")
	}
}

// Chained after bridge: pods on one bridge, the shaped one held to its rates both ways (the traffic
// never leaves the bridge, so this is the veth's own shaping, not the node's routing); CHECK, DEL twice,
// nothing of it left.
func TestBandwidthOnBridge(t *testing.T) {
	harness.RequireRoot(t)
	const inRate, outRate = 10_000_000, 20_000_000
	br := newBridgeNet(t, false)
	list, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": br.Name, "plugins": []any{br.plugin(),
		map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}}}})
	rt := harness.NewRuntime(t)
	shaped, free := harness.NewNetNS(t, "bwba"), harness.NewNetNS(t, "bwbb")
	caps := map[string]any{"bandwidth": map[string]any{"ingressRate": inRate, "ingressBurst": 1_000_000, "egressRate": outRate, "egressBurst": 1_000_000}}
	resA := bwAdd(t, rt, list, "ctr-bwb-a", shaped, caps)
	resB := bwAdd(t, rt, list, "ctr-bwb-b", free, nil)
	ifb := shaping.IfbName(br.Name, "ctr-bwb-a")
	if n := len(resA.Interfaces); n < 1 || resA.Interfaces[n-1].Name != ifb {
		t.Fatalf("result interfaces %+v, want the ifb %s last", resA.Interfaces, ifb)
	}
	if err := rt.Check(t, list, "ctr-bwb-a", shaped.Path, "eth0", caps); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	a, b := podAddrs(t, resA)[0].Addr().String(), podAddrs(t, resB)[0].Addr().String()
	for _, c := range []struct {
		what           string
		server, client harness.NetNS
		addr           string
		want           float64
	}{
		{"shaped -> free", free, shaped, b, outRate},
		{"free -> shaped", shaped, free, a, inRate},
	} {
		requireRate(t, c.what, measureRate(t, c.what, c.server, c.client, c.addr), c.want)
	}
	delTwice(t, rt, list, "ctr-bwb-a", shaped, "eth0", caps)
	if _, err := netlink.LinkByName(ifb); err == nil {
		t.Errorf("ifb %s left after DEL", ifb)
	}
	if p := br.ports(t); len(p) != 1 {
		t.Errorf("bridge ports after DEL of one pod of two: %v", p)
	}
}
