package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/utils"

	"github.com/netloom/netloom/test/harness"
)

// Switching a live node between the reference plugins (v1.9.1) and netloom, both ways: pods set up by
// one suite are CHECKed and DELeted by the other, nothing of either is left, and the host port then
// works for a new pod. The "iptables" case is a conflist that names no portmap backend: the reference
// uses iptables there and netloom nftables, the switch users make by only replacing the binaries. The
// "nftables" case names the nftables backend: the reference's table cni_hostport, netloom's own.

// migrationBackends maps each case to the conflist's "backend" key ("" leaves it out).
var migrationBackends = []struct{ name, key string }{{"iptables", ""}, {"nftables", "nftables"}}

// migrationNet is a portmap network whose bridge also masquerades (ipMasq), with the reference suite in
// one directory.
type migrationNet struct {
	*portmapNet
	key      string // portmap's "backend" key, "" for none
	refSuite string
}

func newMigrationNet(t *testing.T, name, key string) *migrationNet {
	t.Helper()
	p := newPortmapNet(t, name, false)
	delete(p.Extra, "hairpinMode")
	p.Extra["ipMasq"] = true
	return &migrationNet{portmapNet: p, key: key, refSuite: harness.ReferenceSuite(t, "bridge", "host-local", "portmap")}
}

func (m *migrationNet) conflist() []byte {
	pm := map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}}
	if m.key != "" {
		pm["backend"] = m.key
	}
	out, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": m.Name, "plugins": []any{m.plugin(), pm}})
	return out
}

// add attaches a pod through rt and starts a TCP server answering reply on port 80 in it (none when
// reply is empty: a server process would keep the namespace, and so the pod, alive).
func (m *migrationNet) add(t *testing.T, rt *harness.Runtime, id, reply string, caps map[string]any) harness.NetNS {
	t.Helper()
	n := harness.NewNetNS(t, "mg")
	if _, err := rt.Add(t, m.conflist(), id, n.Path, "eth0", caps); err != nil {
		t.Fatalf("ADD %s: %v", id, err)
	}
	// netloom's DEL removes what either suite made, also when the pod's namespace is gone (the
	// reference's bridge DEL then leaves its masquerade chain).
	cleaner := rt.SwitchTo(harness.PluginDir(t))
	t.Cleanup(func() { _ = cleaner.Del(t, m.conflist(), id, n.Path, "eth0", caps) })
	if reply != "" {
		harness.Serve(t, &n, "tcp", 80, reply)
	}
	return n
}

// leftovers lists what of the attachment id is still on the node: rules, chains and set elements of
// either suite that name it (portmap's, and the bridge's masquerade), and its lease.
func (m *migrationNet) leftovers(t *testing.T, id string) []string {
	t.Helper()
	var out []string
	if r := portmapRules(id); r != "" {
		out = append(out, "rules naming it:\n"+r)
	}
	chains := []string{
		utils.MustFormatChainNameWithPrefix(m.Name, id, "DN-"), // the reference portmap's
		utils.FormatChainName(m.Name, id),                      // the bridge's ipMasq
	}
	for _, cmd := range [][]string{{"iptables-save", "-t", "nat"}, {"ip6tables-save", "-t", "nat"}} {
		b, _ := exec.Command(cmd[0], cmd[1:]...).Output()
		for _, c := range chains {
			if strings.Contains(string(b), c) {
				out = append(out, fmt.Sprintf("%s shows chain %s", cmd[0], c))
			}
		}
	}
	for _, l := range m.leases(t) {
		if b, err := os.ReadFile(filepath.Join(m.DataDir, m.Name, l)); err == nil && strings.Contains(string(b), id) {
			out = append(out, "lease "+l)
		}
	}
	return out
}

func (m *migrationNet) expectNothingOf(t *testing.T, what, id string) {
	t.Helper()
	for _, l := range m.leftovers(t, id) {
		t.Errorf("%s: left of %s: %s", what, id, l)
	}
}

// A pod the reference set up is CHECKed and DELeted by netloom, twice, leaving nothing of either suite;
// the host port then forwards to a new netloom pod.
func TestMigrationFromReference(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range migrationBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			m := newMigrationNet(t, be.name, be.key)
			ref := harness.NewRuntimeWithPath(t, m.refSuite)
			nl := ref.SwitchTo(harness.PluginDir(t))
			hp := hostPorts(1)
			caps := capArgs(portMapping{hp, 80, "tcp", ""})
			idA, idB := harness.Unique("ctr-mig-from-a"), harness.Unique("ctr-mig-from-b")

			podA := m.add(t, ref, idA, "ref-pod", caps)
			expectReply(t, "reference pod before the switch", &m.client, "tcp", m.nodeIP, hp, "ref-pod")
			if r := portmapRules(idA); r == "" {
				t.Fatalf("the reference made no rule naming %s", idA)
			}
			if err := nl.Check(t, m.conflist(), idA, podA.Path, "eth0", caps); err != nil {
				t.Errorf("netloom CHECK of the reference's pod: %v", err)
			}
			for i := range 2 {
				if err := nl.Del(t, m.conflist(), idA, podA.Path, "eth0", caps); err != nil {
					t.Fatalf("netloom DEL %d of the reference's pod: %v", i+1, err)
				}
			}
			m.expectNothingOf(t, "after netloom's DEL", idA)
			if ports := m.ports(t); len(ports) != 0 {
				t.Errorf("bridge ports left: %v", ports)
			}

			podB := m.add(t, nl, idB, "new-pod", caps)
			expectReply(t, "the host port after the switch", &m.client, "tcp", m.nodeIP, hp, "new-pod")
			if err := nl.Del(t, m.conflist(), idB, podB.Path, "eth0", caps); err != nil {
				t.Fatalf("DEL of the new pod: %v", err)
			}
			m.expectNothingOf(t, "after the new pod's DEL", idB)
		})
	}
}

// A reference pod whose netns went away without a DEL holds its host port only on paper: netloom's ADD
// of another pod takes the port over. A live reference pod's port is still refused.
func TestMigrationTakeover(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range migrationBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			m := newMigrationNet(t, be.name, be.key)
			ref := harness.NewRuntimeWithPath(t, m.refSuite)
			nl := ref.SwitchTo(harness.PluginDir(t))
			hp := hostPorts(2)
			caps := capArgs(portMapping{hp, 80, "tcp", ""})
			liveCaps := capArgs(portMapping{hp + 1, 80, "tcp", ""})
			idDead, idNew := harness.Unique("ctr-mig-dead"), harness.Unique("ctr-mig-new")
			idLive, idThief := harness.Unique("ctr-mig-live"), harness.Unique("ctr-mig-thief")

			dead := m.add(t, ref, idDead, "", caps)
			live := m.add(t, ref, idLive, "live-pod", liveCaps)
			dead.Delete(t) // the pod is gone; the runtime has not run DEL (yet)

			fresh := m.add(t, nl, idNew, "new-pod", caps)
			expectReply(t, "the taken-over host port", &m.client, "tcp", m.nodeIP, hp, "new-pod")

			thief := harness.NewNetNS(t, "mg")
			_, err := nl.Add(t, m.conflist(), idThief, thief.Path, "eth0", liveCaps)
			if err == nil {
				t.Errorf("ADD of a live reference pod's host port succeeded")
			} else if !strings.Contains(err.Error(), idLive) || !strings.Contains(err.Error(), "still in use") {
				t.Errorf("conflict error does not name the live owner and why it counts as alive: %v", err)
			}
			if err := nl.Del(t, m.conflist(), idThief, thief.Path, "eth0", liveCaps); err != nil {
				t.Errorf("DEL of the refused attachment: %v", err)
			}
			expectReply(t, "the live reference pod after the refused ADD", &m.client, "tcp", m.nodeIP, hp+1, "live-pod")

			// The runtime's late DEL of the dead pod cleans up what is left of it and leaves the new pod alone.
			if err := nl.Del(t, m.conflist(), idDead, dead.Path, "eth0", caps); err != nil {
				t.Fatalf("late DEL of the dead pod: %v", err)
			}
			m.expectNothingOf(t, "after the dead pod's late DEL", idDead)
			expectReply(t, "the new pod after the dead pod's DEL", &m.client, "tcp", m.nodeIP, hp, "new-pod")
			for _, id := range []string{idNew, idLive} {
				ns, c := fresh, caps
				if id == idLive {
					ns, c = live, liveCaps
				}
				if err := nl.Del(t, m.conflist(), id, ns.Path, "eth0", c); err != nil {
					t.Errorf("DEL %s: %v", id, err)
				}
				m.expectNothingOf(t, "after DEL", id)
			}
		})
	}
}

// The way back: netloom's pod, `netloom portmap to-reference`, then the reference's CHECK and DEL work
// and leave nothing of either suite, and a reference pod gets the host port.
func TestMigrationBackToReference(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range migrationBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			m := newMigrationNet(t, be.name, be.key)
			nl := harness.NewRuntimeWithPath(t, harness.PluginDir(t))
			ref := nl.SwitchTo(m.refSuite)
			hp := hostPorts(1)
			caps := capArgs(portMapping{hp, 80, "tcp", ""})
			idA, idB := harness.Unique("ctr-mig-back-a"), harness.Unique("ctr-mig-back-b")

			podA := m.add(t, nl, idA, "netloom-pod", caps)
			expectReply(t, "netloom pod", &m.client, "tcp", m.nodeIP, hp, "netloom-pod")

			tool := filepath.Join(harness.PluginDir(t), "netloom")
			args := []string{"portmap", "to-reference", "--cni-path", m.refSuite, "--cache-dir", nl.CacheDir, "--network", m.Name}
			if out, err := exec.Command(tool, append(args, "--dry-run")...).CombinedOutput(); err != nil || !strings.Contains(string(out), idA) {
				t.Errorf("netloom %s --dry-run: %v: %s", strings.Join(args, " "), err, out)
			}
			out, err := exec.Command(tool, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("netloom %s: %v: %s", strings.Join(args, " "), err, out)
			}
			t.Logf("netloom portmap to-reference: %s", out)
			expectReply(t, "the pod after going back", &m.client, "tcp", m.nodeIP, hp, "netloom-pod")
			if err := ref.Check(t, m.conflist(), idA, podA.Path, "eth0", caps); err != nil {
				t.Errorf("reference CHECK after going back: %v", err)
			}
			for i := range 2 {
				if err := ref.Del(t, m.conflist(), idA, podA.Path, "eth0", caps); err != nil {
					t.Fatalf("reference DEL %d: %v", i+1, err)
				}
			}
			m.expectNothingOf(t, "after the reference's DEL", idA)
			if got, err := harness.Dial(&m.client, "tcp", m.nodeIP, hp, 0); err == nil && got == "netloom-pod" {
				t.Errorf("host port still forwarded to the deleted pod")
			}

			podB := m.add(t, ref, idB, "ref-pod", caps)
			expectReply(t, "a reference pod on the host port", &m.client, "tcp", m.nodeIP, hp, "ref-pod")
			if err := ref.Del(t, m.conflist(), idB, podB.Path, "eth0", caps); err != nil {
				t.Fatalf("DEL of the reference pod: %v", err)
			}
			m.expectNothingOf(t, "after the reference pod's DEL", idB)
		})
	}
}

// GC after the switch removes what the reference left for an attachment the runtime no longer lists
// whose pod is gone, and keeps a listed reference pod's forwarding.
func TestMigrationGC(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range migrationBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			m := newMigrationNet(t, be.name, be.key)
			ref := harness.NewRuntimeWithPath(t, m.refSuite)
			nl := ref.SwitchTo(harness.PluginDir(t))
			hp := hostPorts(2)
			idGone, idLive := harness.Unique("ctr-mig-gcg"), harness.Unique("ctr-mig-gcl")
			gone := m.add(t, ref, idGone, "", capArgs(portMapping{hp, 80, "tcp", ""}))
			m.add(t, ref, idLive, "live-pod", capArgs(portMapping{hp + 1, 80, "tcp", ""}))
			gone.Delete(t)

			if err := nl.GCOnly(t, m.conflist(), []types.GCAttachment{{ContainerID: idLive, IfName: "eth0"}}); err != nil {
				t.Fatalf("netloom GC: %v", err)
			}
			m.expectNothingOf(t, "after GC", idGone)
			if r := portmapRules(idLive); r == "" {
				t.Errorf("GC removed the listed reference pod's rules")
			}
			expectReply(t, "the listed reference pod after GC", &m.client, "tcp", m.nodeIP, hp+1, "live-pod")
		})
	}
}
