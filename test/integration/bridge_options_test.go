package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

// TestBridgeOptions checks that each bridge key the reference plugin accepts shows up in the kernel
// state it is meant to produce. vlan and vlanTrunk need bridge VLAN filtering, which this kernel lacks:
// they are covered by the VM lane.
func TestBridgeOptions(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	b.Extra["mtu"] = 1400
	b.Extra["hairpinMode"] = true
	b.Extra["portIsolation"] = true
	b.Extra["macspoofchk"] = true
	b.Extra["isGateway"] = true
	b.Extra["capabilities"] = map[string]bool{"mac": true}
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	n := harness.NewNetNS(t, "o")
	const mac = "0a:58:0a:d5:00:42"
	if _, err := rt.Add(t, list, "ctr-o", n.Path, "eth0", map[string]any{"mac": mac}); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-o", n.Path, "eth0", map[string]any{"mac": mac}) })

	br, err := netlink.LinkByName(b.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if got := br.Attrs().MTU; got != 1400 {
		t.Errorf("bridge MTU %d, want 1400", got)
	}
	ports := b.ports(t)
	if len(ports) != 1 {
		t.Fatalf("bridge ports %v, want one", ports)
	}
	port, err := netlink.LinkByName(ports[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := port.Attrs().MTU; got != 1400 {
		t.Errorf("host veth MTU %d, want 1400", got)
	}
	pi, err := netlink.LinkGetProtinfo(port)
	if err != nil {
		t.Fatal(err)
	}
	if !pi.Hairpin {
		t.Errorf("port %s: hairpin off (hairpinMode)", ports[0])
	}
	if !pi.Isolated {
		t.Errorf("port %s: not isolated (portIsolation)", ports[0])
	}
	if out := n.Run(t, "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, mac) || !strings.Contains(out, "mtu 1400") {
		t.Errorf("pod eth0 lacks runtimeConfig mac %s or mtu 1400: %s", mac, out)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(v)) != "1" {
		t.Errorf("ip_forward = %q after ADD of a gateway bridge, want 1", v)
	}
	if out, err := nftList("bridge", "nat"); err != nil || !strings.Contains(out, mac) {
		t.Errorf("no macspoofchk rule for %s in table bridge nat (%v):\n%s", mac, err, out)
	}
	if err := rt.Check(t, list, "ctr-o", n.Path, "eth0", map[string]any{"mac": mac}); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := rt.Del(t, list, "ctr-o", n.Path, "eth0", map[string]any{"mac": mac}); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if out, _ := nftList("bridge", "nat"); strings.Contains(out, mac) {
		t.Errorf("macspoofchk rule left after DEL:\n%s", out)
	}
}

// With disableContainerInterface (L2 only, as in the reference: no ipam; here also with promiscMode, which the reference refuses together with hairpinMode) the pod's interface exists in
// the pod but is left down, for a workload that configures it itself.
func TestBridgeDisableContainerInterface(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	list := []byte(`{"cniVersion":"1.1.0","name":"` + b.Name + `","plugins":[{"type":"bridge","bridge":"` + b.Bridge + `","disableContainerInterface":true,"promiscMode":true}]}`)
	rt := harness.NewRuntime(t)
	n := harness.NewNetNS(t, "d")
	if _, err := rt.Add(t, list, "ctr-d", n.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-d", n.Path, "eth0", nil) })
	out := n.Run(t, "ip", "-o", "link", "show", "eth0")
	if strings.Contains(out, "state UP") || strings.Contains(out, ",UP") {
		t.Errorf("eth0 is up despite disableContainerInterface: %s", out)
	}
	if p := b.ports(t); len(p) != 1 {
		t.Errorf("bridge ports %v, want one", p)
	}
	if br, err := netlink.LinkByName(b.Bridge); err != nil || br.Attrs().Promisc != 1 {
		t.Errorf("bridge is not promiscuous (promiscMode): %v", err)
	}
	if err := rt.Check(t, list, "ctr-d", n.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := rt.Del(t, list, "ctr-d", n.Path, "eth0", nil); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if p := b.ports(t); len(p) != 0 {
		t.Errorf("bridge ports left after DEL: %v", p)
	}
}

// nftList prints one nftables table; an absent table prints nothing.
func nftList(family, table string) (string, error) {
	out, err := exec.Command("nft", "list", "table", family, table).CombinedOutput()
	return string(out), err
}
