package integration

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/netloom/netloom/test/harness"
)

// bridgeVlanAvailable probes whether the kernel has bridge VLAN filtering, which "vlan" and "vlanTrunk"
// need, by making a filtering bridge in a throwaway namespace.
func bridgeVlanAvailable(t *testing.T) bool {
	t.Helper()
	n := harness.NewNetNS(t, "vp")
	_, err := n.Exec("ip", "link", "add", "br0", "type", "bridge", "vlan_filtering", "1")
	return err == nil
}

// TestVMBridgeVlan runs in the VM lane (this machine's kernel has no bridge VLAN filtering): pods on
// the same access VLAN reach each other and their gateway, which sits on <bridge>.<vlan>; a trunk port
// carries its tagged VLANs.
func TestVMBridgeVlan(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireKernelFeature(t, "bridge VLAN filtering", bridgeVlanAvailable(t))
	b := newBridgeNet(t, false)
	b.Bridge = harness.Unique("nv") // room for the ".100" of the gateway interface in 15 bytes
	harness.RemoveLinkOnCleanup(t, b.Bridge)
	b.Extra["vlan"] = 100
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	var pods []harness.NetNS
	var addrs []string
	for _, id := range []string{"ctr-v1", "ctr-v2"} {
		n := harness.NewNetNS(t, "vl")
		r, err := rt.Add(t, list, id, n.Path, "eth0", nil)
		if err != nil {
			t.Fatalf("ADD %s: %v", id, err)
		}
		t.Cleanup(func() { _ = rt.Del(t, list, id, n.Path, "eth0", nil) })
		pods = append(pods, n)
		addrs = append(addrs, podAddrs(t, r)[0].Addr().String())
	}
	if err := harness.Ping(t, pods[0], addrs[1]); err != nil {
		t.Errorf("pod on VLAN 100 -> other pod on VLAN 100: %v", err)
	}
	gw := strings.TrimSuffix(addrs[0], addrs[0][strings.LastIndex(addrs[0], ".")+1:]) + "1"
	if err := harness.Ping(t, pods[1], gw); err != nil {
		t.Errorf("pod -> gateway %s on %s.100: %v", gw, b.Bridge, err)
	}
	for _, port := range b.ports(t) {
		out, _ := exec.Command("bridge", "vlan", "show", "dev", port).CombinedOutput()
		if !strings.Contains(string(out), "100 PVID") {
			t.Errorf("port %s is not an access port of VLAN 100:\n%s", port, out)
		}
	}
	if err := rt.Check(t, list, "ctr-v1", pods[0].Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}

	// A trunk port on another network of the same kind.
	tb := newBridgeNet(t, false)
	tb.Extra["vlanTrunk"] = []map[string]int{{"id": 200}, {"minID": 300, "maxID": 302}}
	tb.Extra["isDefaultGateway"] = false
	tlist := tb.conflist("1.1.0")
	n := harness.NewNetNS(t, "vt")
	if _, err := rt.Add(t, tlist, "ctr-trunk", n.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD trunk: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, tlist, "ctr-trunk", n.Path, "eth0", nil) })
	ports := tb.ports(t)
	if len(ports) != 1 {
		t.Fatalf("trunk bridge ports %v, want one", ports)
	}
	out, _ := exec.Command("bridge", "vlan", "show", "dev", ports[0]).CombinedOutput()
	for _, id := range []string{"200", "300", "301", "302"} {
		if !strings.Contains(string(out), id) {
			t.Errorf("trunk port lacks VLAN %s:\n%s", id, out)
		}
	}
	if err := rt.Del(t, tlist, "ctr-trunk", n.Path, "eth0", nil); err != nil {
		t.Errorf("DEL trunk: %v", err)
	}
}
