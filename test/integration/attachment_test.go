package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/test/harness"
)

// The scaffolding of attachment tests: ADD and its result, the verbs that follow, DEL twice, bad input,
// the reference's pods and fault leftovers of plugins that give the pod one interface (host-device,
// tap, vlan, dummy), and measured rates (bandwidth).

// oneConflist is a conflist of the one plugin p, named uniquely after prefix, with keys changing p's
// keys: a nil value deletes one.
func oneConflist(cniVersion, prefix string, p, keys map[string]any) []byte {
	for k, v := range keys {
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	out, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": harness.Unique(prefix), "plugins": []any{p}})
	return out
}

// addAttachment runs ADD of list for a new container in pod as ifName, with a DEL for the test's
// cleanup, and returns the container ID and the result in the current version, which must name one
// interface: ifName, in pod. A failed ADD ends the test.
func addAttachment(t *testing.T, rt *harness.Runtime, list []byte, pod harness.NetNS, ifName string, capArgs map[string]any) (string, *current.Result) {
	t.Helper()
	id := harness.Unique("ctr")
	r, err := rt.Add(t, list, id, pod.Path, ifName, capArgs)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, id, pod.Path, ifName, capArgs) })
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 1 || res.Interfaces[0].Name != ifName || res.Interfaces[0].Sandbox != pod.Path {
		t.Errorf("interfaces %+v", res.Interfaces)
	}
	return id, res
}

// finishAttachment runs the verbs that follow a version test's ADD of attachment id: CHECK (cniVersion
// 0.4.0 on), STATUS and a GC that keeps the attachment (1.1.0; then kept, when not nil, checks it is
// intact), DEL twice; then ifName must be gone from pod.
func finishAttachment(t *testing.T, rt *harness.Runtime, list []byte, cniVersion, id string, pod harness.NetNS, ifName string, capArgs map[string]any, kept func()) {
	t.Helper()
	if cniVersion >= "0.4.0" {
		if err := rt.Check(t, list, id, pod.Path, ifName, capArgs); err != nil {
			t.Errorf("CHECK: %v", err)
		}
	}
	if cniVersion == "1.1.0" {
		if err := rt.Status(t, list); err != nil {
			t.Errorf("STATUS: %v", err)
		}
		if err := rt.GC(t, list, []types.GCAttachment{{ContainerID: id, IfName: ifName}}); err != nil {
			t.Errorf("GC keeping the attachment: %v", err)
		}
		if kept != nil {
			kept()
		}
	}
	delTwice(t, rt, list, id, pod, ifName, capArgs)
	requireNoLink(t, pod, ifName, "after DEL")
}

// delTwice runs DEL of attachment id twice, as a runtime may: both must succeed.
func delTwice(t *testing.T, rt *harness.Runtime, list []byte, id string, pod harness.NetNS, ifName string, capArgs map[string]any) {
	t.Helper()
	for i := range 2 {
		if err := rt.Del(t, list, id, pod.Path, ifName, capArgs); err != nil {
			t.Errorf("DEL %d: %v", i+1, err)
		}
	}
}

// requireNoLink fails t when pod has a link ifName; when says at what point.
func requireNoLink(t *testing.T, pod harness.NetNS, ifName, when string) {
	t.Helper()
	if _, err := pod.Exec("ip", "link", "show", ifName); err == nil {
		t.Errorf("%s left in the pod %s", ifName, when)
	}
}

// requireAddRefused runs ADD of list's first plugin directly (as cniVersion 1.1.0, under the list's
// name), in pod as ifName, and fails t unless it returns a CNI error of code whose message names field.
func requireAddRefused(t *testing.T, list []byte, pod harness.NetNS, ifName string, code uint, field string) {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(list, &p); err != nil {
		t.Fatal(err)
	}
	plugin := p["plugins"].([]any)[0].(map[string]any)
	plugin["cniVersion"], plugin["name"] = "1.1.0", p["name"]
	stdin, _ := json.Marshal(plugin)
	out, err := harness.RunPlugin(t, plugin["type"].(string), harness.CNIEnv("ADD", "ctr1", pod.Path, ifName, ""), stdin)
	if e, ok := harness.CNIError(out); err == nil || !ok || e.Code != code || !strings.Contains(e.Msg, field) {
		t.Errorf("ADD of %s: %v %s; want code %d naming %q", stdin, err, out, code, field)
	}
}

// requireReferenceAdopted runs the reference plugin's ADD of list in pod as ifName, then netloom's CHECK
// and DEL, which must pass and leave no ifName: a pod the reference made survives the switch.
func requireReferenceAdopted(t *testing.T, plugin string, list []byte, pod harness.NetNS, ifName string) {
	t.Helper()
	rt := harness.NewRuntime(t)
	id := harness.Unique("ctr")
	if _, err := rt.WithPath(t, harness.ReferencePlugin(t, plugin), harness.PluginDir(t)).Add(t, list, id, pod.Path, ifName, nil); err != nil {
		t.Fatalf("reference ADD: %v", err)
	}
	if err := rt.Check(t, list, id, pod.Path, ifName, nil); err != nil {
		t.Errorf("netloom CHECK: %v", err)
	}
	if err := rt.Del(t, list, id, pod.Path, ifName, nil); err != nil {
		t.Errorf("netloom DEL: %v", err)
	}
	requireNoLink(t, pod, ifName, "after netloom DEL")
}

// podAndLeases is a fault chain's leftovers of a one-interface plugin leasing from host-local in
// dataDir: the pod's eth0 and the network's leases.
func podAndLeases(dataDir, network string) func(t *testing.T, _ string, pod *harness.NetNS) []string {
	return func(t *testing.T, _ string, pod *harness.NetNS) []string {
		left := podInterface(pod)
		for _, l := range harness.Leases(t, dataDir, network) {
			left = append(left, "lease "+l)
		}
		return left
	}
}

// measureRate runs an iperf3 TCP flow from client to addr (in server) and returns its bits/s, logged
// under what; a failed run ends the test.
func measureRate(t *testing.T, what string, server, client harness.NetNS, addr string) float64 {
	t.Helper()
	bps, err := harness.Iperf3(t, server, client, addr, 3)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %.2f Mbit/s", what, bps/1e6)
	return bps
}

// requireRate fails t unless got bits/s is within 0.5x..1.3x of want: a tbf's burst and TCP's ramp
// keep a short flow from meeting the rate exactly.
func requireRate(t *testing.T, what string, got, want float64) {
	t.Helper()
	if got < 0.5*want || got > 1.3*want {
		t.Errorf("%s: %.2f Mbit/s, want %.2f Mbit/s within 0.5x..1.3x", what, got/1e6, want/1e6)
	}
}
