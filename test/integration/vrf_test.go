package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/test/harness"
)

// vrfAvailable tells whether this kernel can make VRF devices, by making one in a throwaway namespace.
func vrfAvailable(t *testing.T) bool {
	t.Helper()
	harness.RequireRoot(t)
	return harness.LinkKindAvailable(t, "vrf", "table", "10")
}

// vrfNet is bridge (the pod's gateway) + host-local + vrf. With routes, IPAM adds default routes, which
// vrf moves into the VRF's table (and the bridge's CHECK then misses in main, as the reference's does).
type vrfNet struct {
	b      *bridgeNet
	vrf    map[string]any
	routes bool
}

func newVrfNet(t *testing.T, v6, routes bool, vrf map[string]any) *vrfNet {
	t.Helper()
	n := &vrfNet{b: newBridgeNet(t, v6), vrf: map[string]any{"type": "vrf", "vrfname": "blue"}, routes: routes}
	for k, v := range vrf {
		n.vrf[k] = v
	}
	return n
}

func (n *vrfNet) conflist(cniVersion string) []byte {
	br := n.b.plugin()
	br["isDefaultGateway"], br["isGateway"] = false, true
	if n.routes {
		routes := []map[string]string{{"dst": "0.0.0.0/0"}}
		if len(n.b.Subnets) > 1 {
			routes = append(routes, map[string]string{"dst": "::/0"})
		}
		br["ipam"].(map[string]any)["routes"] = routes
	}
	out, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": n.b.Name, "plugins": []any{br, n.vrf}})
	return out
}

func (n *vrfNet) gateway4() string {
	s := n.b.Subnets[0]
	return s[:strings.LastIndex(s, ".")] + ".1"
}

func (n *vrfNet) leftovers(t *testing.T) []string {
	t.Helper()
	var out []string
	if p := n.b.ports(t); len(p) != 0 {
		out = append(out, fmt.Sprintf("bridge ports %v", p))
	}
	if l := n.b.leases(t); len(l) != 0 {
		out = append(out, fmt.Sprintf("leases %v", l))
	}
	return out
}

// podVRFs lists the pod's VRF devices as "name table N".
func podVRFs(t *testing.T, pod harness.NetNS) []string {
	t.Helper()
	var out []string
	for line := range strings.SplitSeq(pod.Run(t, "ip", "-d", "-o", "link", "show", "type", "vrf"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if i := slices.Index(f, "table"); i >= 0 && i+1 < len(f) {
			out = append(out, name+" table "+f[i+1])
		}
	}
	return out
}

// podMaster returns the name of ifName's master in the pod ("" when none).
func podMaster(t *testing.T, pod harness.NetNS, ifName string) string {
	t.Helper()
	f := strings.Fields(pod.Run(t, "ip", "-o", "link", "show", ifName))
	if i := slices.Index(f, "master"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

// runVRF runs a vrf binary once for the pod's eth0, as a runtime without libcni does.
func runVRF(t *testing.T, binary, command, id string, pod harness.NetNS, stdin []byte) ([]byte, error) {
	t.Helper()
	env := map[string]string{"CNI_COMMAND": command, "CNI_CONTAINERID": id, "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
	return harness.RunPlugin(t, binary, env, stdin)
}

// vrfStdin is the vrf plugin's own configuration with a prevResult, as the runtime pipes it at CHECK.
func vrfStdin(t *testing.T, n *vrfNet, r types.Result) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"cniVersion": r.Version(), "name": n.b.Name, "prevResult": json.RawMessage(b)}
	for k, v := range n.vrf {
		m[k] = v
	}
	out, _ := json.Marshal(m)
	return out
}

// Dual-stack bridge + vrf: the pod's eth0 in VRF "blue" (table 1, the reference's first choice) with
// both addresses and both default routes in the VRF's table; traffic through the VRF reaches the
// gateway; CHECK passes and sees the interface leave; DEL twice removes the VRF.
func TestVMVRFChain(t *testing.T) {
	harness.RequireKernelFeature(t, "vrf", vrfAvailable(t))
	t.Parallel()
	n := newVrfNet(t, true, true, nil)
	list := n.conflist("1.0.0")
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "vrf")
	r, err := rt.Add(t, list, "ctr-vrf", pod.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-vrf", pod.Path, "eth0", nil) })
	if got := podVRFs(t, pod); !slices.Equal(got, []string{"blue table 1"}) {
		t.Errorf("VRFs %v", got)
	}
	if m := podMaster(t, pod, "eth0"); m != "blue" {
		t.Errorf("eth0's master %q", m)
	}
	addrs := pod.Run(t, "ip", "-o", "addr", "show", "dev", "eth0")
	for _, a := range podAddrs(t, r) {
		if !strings.Contains(addrs, a.String()) {
			t.Errorf("eth0 lost %s:\n%s", a, addrs)
		}
	}
	vrfRoutes := pod.Run(t, "ip", "route", "show", "vrf", "blue") + pod.Run(t, "ip", "-6", "route", "show", "vrf", "blue")
	gw6 := strings.TrimSuffix(n.b.Subnets[1], "/64") + "1"
	for _, want := range []string{"default via " + n.gateway4() + " dev eth0", "default via " + gw6 + " dev eth0", n.b.Subnets[0] + " dev eth0"} {
		if !strings.Contains(vrfRoutes, want) {
			t.Errorf("VRF table lacks %q:\n%s", want, vrfRoutes)
		}
	}
	if main := pod.Run(t, "ip", "route", "show", "table", "main"); strings.Contains(main, "eth0") {
		t.Errorf("main still routes through eth0:\n%s", main)
	}
	if _, err := pod.Exec("ping", "-c1", "-W3", "-I", "blue", n.gateway4()); err != nil {
		t.Errorf("ping the gateway through the VRF: %v", err)
	}
	stdin := vrfStdin(t, n, r)
	if out, err := runVRF(t, "vrf", "CHECK", "ctr-vrf", pod, stdin); err != nil {
		t.Errorf("CHECK: %v: %s", err, out)
	}
	pod.Run(t, "ip", "link", "set", "eth0", "nomaster")
	if out, err := runVRF(t, "vrf", "CHECK", "ctr-vrf", pod, stdin); err == nil {
		t.Errorf("CHECK passed with eth0 out of the VRF: %s", out)
	}
	pod.Run(t, "ip", "link", "set", "eth0", "master", "blue")
	for i := range 2 {
		if err := rt.Del(t, list, "ctr-vrf", pod.Path, "eth0", nil); err != nil {
			t.Errorf("DEL %d: %v", i+1, err)
		}
	}
	if got := podVRFs(t, pod); len(got) != 0 {
		t.Errorf("VRFs left: %v", got)
	}
	if l := n.leftovers(t); len(l) != 0 {
		t.Errorf("left: %v", l)
	}
}

// Two attachments of one pod share VRF "blue" with a configured table: the second joins the first's
// VRF, the first DEL keeps it for the second, the last DEL removes it.
func TestVMVRFSharedTable(t *testing.T) {
	harness.RequireKernelFeature(t, "vrf", vrfAvailable(t))
	t.Parallel()
	n := newVrfNet(t, false, false, map[string]any{"table": 42})
	list := n.conflist("1.1.0")
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "vrfs")
	for _, ifName := range []string{"eth0", "net1"} {
		if _, err := rt.Add(t, list, "ctr-vrfs", pod.Path, ifName, nil); err != nil {
			t.Fatalf("ADD %s: %v", ifName, err)
		}
		t.Cleanup(func() { _ = rt.Del(t, list, "ctr-vrfs", pod.Path, ifName, nil) })
		if m := podMaster(t, pod, ifName); m != "blue" {
			t.Errorf("%s's master %q", ifName, m)
		}
	}
	if got := podVRFs(t, pod); !slices.Equal(got, []string{"blue table 42"}) {
		t.Errorf("VRFs %v", got)
	}
	if err := rt.Check(t, list, "ctr-vrfs", pod.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := rt.Del(t, list, "ctr-vrfs", pod.Path, "eth0", nil); err != nil {
		t.Errorf("DEL eth0: %v", err)
	}
	if got := podVRFs(t, pod); !slices.Equal(got, []string{"blue table 42"}) {
		t.Errorf("after the first DEL, VRFs %v; want blue kept for net1", got)
	}
	if err := rt.Del(t, list, "ctr-vrfs", pod.Path, "net1", nil); err != nil {
		t.Errorf("DEL net1: %v", err)
	}
	if got := podVRFs(t, pod); len(got) != 0 {
		t.Errorf("VRFs left: %v", got)
	}
	if l := n.leftovers(t); len(l) != 0 {
		t.Errorf("left: %v", l)
	}
}

// Netloom's vrf makes the reference's VRF, table and routes, and each suite's CHECK and DEL accept what
// the other's ADD made.
func TestVMVRFMatchesReference(t *testing.T) {
	harness.RequireKernelFeature(t, "vrf", vrfAvailable(t))
	t.Parallel()
	ref := filepath.Join(harness.ReferencePlugin(t, "vrf"), "vrf")
	var layouts [2][]string
	for i, tc := range []struct{ name, add, other string }{
		{"reference ADD, netloom CHECK and DEL", ref, "vrf"},
		{"netloom ADD, reference CHECK and DEL", "vrf", ref},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newVrfNet(t, false, true, nil)
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "vrfr")
			// The bridge through libcni; then vrf run directly with the bridge's result.
			bridgeOnly, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": n.b.Name, "plugins": []any{json.RawMessage(mustJSON(n.conflistPlugin0()))}})
			r, err := rt.Add(t, bridgeOnly, "ctr-vrfr", pod.Path, "eth0", nil)
			if err != nil {
				t.Fatalf("bridge ADD: %v", err)
			}
			t.Cleanup(func() { _ = rt.Del(t, bridgeOnly, "ctr-vrfr", pod.Path, "eth0", nil) })
			stdin := vrfStdin(t, n, r)
			if out, err := runVRF(t, tc.add, "ADD", "ctr-vrfr", pod, stdin); err != nil {
				t.Fatalf("vrf ADD: %v: %s", err, out)
			}
			l := append(podVRFs(t, pod), "master "+podMaster(t, pod, "eth0"))
			for line := range strings.SplitSeq(pod.Run(t, "ip", "route", "show", "vrf", "blue"), "\n") {
				if line = strings.TrimSpace(line); line != "" {
					line = strings.ReplaceAll(line, n.gateway4(), "GW")
					line = strings.ReplaceAll(line, n.b.Subnets[0], "SUBNET")
					line = strings.ReplaceAll(line, podAddrs(t, r)[0].Addr().String(), "ADDR")
					l = append(l, line)
				}
			}
			layouts[i] = l
			if out, err := runVRF(t, tc.other, "CHECK", "ctr-vrfr", pod, stdin); err != nil {
				t.Errorf("CHECK: %v: %s", err, out)
			}
			if out, err := runVRF(t, tc.other, "DEL", "ctr-vrfr", pod, stdin); err != nil {
				t.Errorf("DEL: %v: %s", err, out)
			}
			if got := podVRFs(t, pod); len(got) != 0 {
				t.Errorf("VRFs left: %v", got)
			}
		})
	}
	if !slices.Equal(layouts[0], layouts[1]) {
		t.Errorf("reference:\n%s\nnetloom:\n%s", strings.Join(layouts[0], "\n"), strings.Join(layouts[1], "\n"))
	} else {
		t.Logf("same layout:\n%s", strings.Join(layouts[0], "\n"))
	}
}

func (n *vrfNet) conflistPlugin0() map[string]any {
	var l struct {
		Plugins []map[string]any `json:"plugins"`
	}
	_ = json.Unmarshal(n.conflist("1.0.0"), &l)
	return l.Plugins[0]
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestVMVRFEveryCNIVersion(t *testing.T) {
	harness.RequireKernelFeature(t, "vrf", vrfAvailable(t))
	t.Parallel()
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			n := newVrfNet(t, false, false, nil)
			list := n.conflist(v)
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "vrfv")
			r, err := rt.Add(t, list, "ctr-vrfv", pod.Path, "eth0", nil)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if r.Version() != v || podMaster(t, pod, "eth0") != "blue" {
				t.Errorf("result version %s, eth0's master %q", r.Version(), podMaster(t, pod, "eth0"))
			}
			if v != "0.3.0" && v != "0.3.1" {
				if err := rt.Check(t, list, "ctr-vrfv", pod.Path, "eth0", nil); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if err := rt.Del(t, list, "ctr-vrfv", pod.Path, "eth0", nil); err != nil {
				t.Errorf("DEL: %v", err)
			}
			if l := n.leftovers(t); len(l) != 0 || len(podVRFs(t, pod)) != 0 {
				t.Errorf("left: %v, VRFs %v", l, podVRFs(t, pod))
			}
		})
	}
}

// A VRF of another table, or a link of the VRF's name that is no VRF: code 7 naming the key, and the
// interface stays out of it.
func TestVMVRFConflicts(t *testing.T) {
	harness.RequireKernelFeature(t, "vrf", vrfAvailable(t))
	t.Parallel()
	for _, tc := range []struct {
		name, setup, naming string
	}{
		{"VRF with another table", "vrf", "table"},
		{"name taken by a veth", "veth", "vrfname"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := vethPod(t)
			if tc.setup == "vrf" {
				pod.Run(t, "ip", "link", "add", "blue", "type", "vrf", "table", "5")
			} else {
				pod.Run(t, "ip", "link", "add", "blue", "type", "veth", "peer", "name", "blue1")
			}
			stdin := []byte(`{"cniVersion":"1.0.0","name":"c","type":"vrf","vrfname":"blue","table":7,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}]}}`)
			out, err := runVRF(t, "vrf", "ADD", "ctr-vrfc", pod, stdin)
			if err == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			if e := tuningErr(t, out); e.Code != 7 || !strings.Contains(e.Msg, tc.naming) {
				t.Errorf("error %+v, want code 7 naming %s", e, tc.naming)
			}
			if m := podMaster(t, pod, "eth0"); m != "" {
				t.Errorf("eth0's master %q", m)
			}
			if out, err := runVRF(t, "vrf", "DEL", "ctr-vrfc", pod, stdin); err != nil {
				t.Errorf("DEL: %v: %s", err, out)
			}
		})
	}
}

// Killed at each step: the runtime's DEL frees the interface and removes the VRF.
func TestVMVRFFaultPoints(t *testing.T) {
	harness.RequireKernelFeature(t, "vrf", vrfAvailable(t))
	n := newVrfNet(t, true, true, nil)
	faultChain{
		list:   n.conflist("1.1.0"),
		points: stepPoints("vrf", "vrf", "enslave", "routes"),
		leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
			out := append(podInterface(pod), n.leftovers(t)...)
			if v := podVRFs(t, *pod); len(v) != 0 {
				out = append(out, fmt.Sprintf("VRFs %v", v))
			}
			return out
		},
	}.killAtEveryPoint(t, "ctr-fault-vrf")
}

// Bad configurations fail before any kernel work, on any kernel: code 7 naming the key. STATUS says
// whether this kernel can make VRFs at all.
func TestVrfBadInputAndStatus(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	pod := vethPod(t)
	const prev = `"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}]}`
	for _, tc := range []struct{ name, conf, naming string }{
		{"no vrfname", `{"cniVersion":"1.0.0","name":"b","type":"vrf",` + prev + `}`, "vrfname"},
		{"vrfname too long", `{"cniVersion":"1.0.0","name":"b","type":"vrf","vrfname":"a-very-long-vrf-name",` + prev + `}`, "vrfname"},
		{"negative table", `{"cniVersion":"1.0.0","name":"b","type":"vrf","vrfname":"blue","table":-1,` + prev + `}`, "table"},
		{"no prevResult", `{"cniVersion":"1.0.0","name":"b","type":"vrf","vrfname":"blue"}`, "prevResult"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runVRF(t, "vrf", "ADD", "ctr-vrfb", pod, []byte(tc.conf))
			if err == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			if e := tuningErr(t, out); e.Code != 7 || !strings.Contains(e.Msg, tc.naming) {
				t.Errorf("error %+v, want code 7 naming %s", e, tc.naming)
			}
		})
	}
	env := map[string]string{"CNI_COMMAND": "STATUS"}
	out, err := harness.RunPlugin(t, "vrf", env, []byte(`{"cniVersion":"1.1.0","name":"b","type":"vrf","vrfname":"blue"}`))
	if link.KernelHas("vrf") {
		if err != nil {
			t.Errorf("STATUS on a kernel with vrf: %v: %s", err, out)
		}
	} else if err == nil || tuningErr(t, out).Code != 50 {
		t.Errorf("STATUS on a kernel without vrf: %v: %s, want code 50", err, out)
	}
}
