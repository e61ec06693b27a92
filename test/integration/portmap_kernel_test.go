package integration

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/test/harness"
)

// TestVMPortmapDefaultBackend: with no backend named, portmap forwards through nftables where the
// kernel takes the backend's rules (Linux 6.5 and later) and through iptables before; there, a
// conflist that names the nftables backend is refused with a message that names the kernel and the
// way out. It runs on the host's kernel and in the VM lane's (Debian 12's 6.1, where the nftables
// backend's first ADD used to fail with "invalid argument").
func TestVMPortmapDefaultBackend(t *testing.T) {
	harness.RequireRoot(t)
	p := newPortmapNet(t, "", false)
	rt := harness.NewRuntime(t)
	hp := hostPorts(1)
	caps := capArgs(portMapping{hp, 80, "tcp", ""})
	id := "ctr-pmdef"
	pod, _ := p.addPod(t, rt, id, "pod-def", caps)
	expectReply(t, "another host, default backend", &p.client, "tcp", p.nodeIP, hp, "pod-def")

	nft, _ := exec.Command("nft", "list", "table", "inet", "netloom_portmap").CombinedOutput()
	inNFT := strings.Contains(string(nft), id)
	t.Logf("kernel %s: default backend forwards through %s", nftnl.Release(), map[bool]string{true: "nftables", false: "iptables"}[inNFT])
	if inNFT != nftnl.MapLookups() {
		t.Errorf("kernel %s: the attachment is in nftables: %v, want %v:\n%s", nftnl.Release(), inNFT, nftnl.MapLookups(), portmapRules(id))
	}
	if err := rt.Check(t, p.conflist(), id, pod.Path, "eth0", caps); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if nftnl.MapLookups() {
		return
	}
	named := &portmapNet{bridgeNet: p.bridgeNet, backend: "nftables", client: p.client}
	n := harness.NewNetNS(t, "pm")
	_, err := rt.Add(t, named.conflist(), "ctr-pmnft", n.Path, "eth0", capArgs(portMapping{hp + 1, 80, "tcp", ""}))
	if err == nil || !strings.Contains(err.Error(), "Linux 6.5") || !strings.Contains(err.Error(), `"backend": "iptables"`) {
		t.Errorf("ADD with the nftables backend on %s: %v, want it refused, naming Linux 6.5 and the iptables backend", nftnl.Release(), err)
	}
	if err := rt.Del(t, named.conflist(), "ctr-pmnft", n.Path, "eth0", nil); err != nil {
		t.Errorf("DEL after the refused ADD: %v", err)
	}
}
