package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/test/harness"
)

// hairpinOf reads the hairpin mode of bridge port (the host end of a pod's veth).
func hairpinOf(t *testing.T, port string) string {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + port + "/brport/hairpin_mode")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// A pod reaches itself through its own host port although the bridge plugin's hairpinMode is off:
// portmap turns hairpin on for the pod's bridge port, the bridge having turned DAD off in the pod.
// With "enabledad" it must not (hairpin would reflect the DAD probes and fail the pod's IPv6 address).
func TestPortmapHairpinWithoutHairpinMode(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			t.Parallel()
			p := newPortmapNet(t, be, true)
			delete(p.Extra, "hairpinMode")
			rt := harness.NewRuntime(t)
			hp := hostPorts(1)
			caps := capArgs(portMapping{hp, 80, "tcp", ""})
			pod, _ := p.addPod(t, rt, p.id(harness.Unique("ctr-hp")), "self", caps)
			ports := p.ports(t)
			if len(ports) != 1 || hairpinOf(t, ports[0]) != "1" {
				t.Fatalf("bridge ports %v: want one with hairpin on", ports)
			}
			expectReply(t, "the pod to its own host port on the node's address", &pod, "tcp", p.nodeIP, hp, "self")
			expectReply(t, "the pod to its own host port over IPv6", &pod, "tcp", p.nodeIP6, hp, "self")
		})
	}
	t.Run("enabledad", func(t *testing.T) {
		t.Parallel()
		p := newPortmapNet(t, "nftables", true)
		delete(p.Extra, "hairpinMode")
		p.Extra["enabledad"] = true
		rt := harness.NewRuntime(t)
		pod, _ := p.addPod(t, rt, harness.Unique("ctr-hpdad"), "dad", capArgs(portMapping{hostPorts(1), 80, "tcp", ""}))
		for _, port := range p.ports(t) {
			if hairpinOf(t, port) != "0" {
				t.Errorf("hairpin turned on for %s although DAD runs in the pod", port)
			}
		}
		if out := pod.Run(t, "ip", "-6", "addr", "show", "dev", "eth0"); strings.Contains(out, "dadfailed") {
			t.Errorf("pod address failed DAD:\n%s", out)
		}
	})
}

// On an IPv4-only network (the bridge leaves IPv6 and its DAD alone there) whose bridge plugin set
// hairpinMode, portmap finds hairpin already on and says nothing: it used to warn on every ADD that it
// could not turn on what was already on.
func TestPortmapHairpinModeIPv4NoWarning(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	p := newPortmapNet(t, "nftables", false)
	logFile := t.TempDir() + "/plugins.log"
	rt := harness.NewRuntime(t).WithEnv(plugin.LogFileEnv + "=" + logFile)
	hp := hostPorts(1)
	pod, _ := p.addPod(t, rt, harness.Unique("ctr-hpv4"), "self", capArgs(portMapping{hp, 80, "tcp", ""}))
	ports := p.ports(t)
	if len(ports) != 1 || hairpinOf(t, ports[0]) != "1" {
		t.Fatalf("bridge ports %v: want one with hairpin on (hairpinMode)", ports)
	}
	expectReply(t, "the pod to its own host port on the node's address", &pod, "tcp", p.nodeIP, hp, "self")
	if b, err := os.ReadFile(logFile); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	} else if strings.Contains(string(b), "hairpin") {
		t.Errorf("the plugins logged about hairpin although hairpinMode had set it:\n%s", b)
	}
}
