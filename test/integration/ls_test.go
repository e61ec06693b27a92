package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/netloom/netloom/pkg/doctor"
	"github.com/netloom/netloom/pkg/inventory"
	"github.com/netloom/netloom/pkg/overlay"
	"github.com/netloom/netloom/test/harness"
)

// lsNode is a node namespace with one bridge network (bridge + host-local + portmap, masquerading)
// whose plugins run inside it as the node's runtime runs them, with a private result cache, lease
// directory and conf dir.
type lsNode struct {
	node    harness.NetNS
	rt      *harness.Runtime
	b       *bridgeNet
	list    []byte
	confDir string
	file    string
}

func newLSNode(t *testing.T, rt *harness.Runtime, backend string) *lsNode {
	t.Helper()
	requirePortmapBackend(t, backend)
	n := &lsNode{node: harness.NewNetNS(t, "lsn"), rt: rt, b: newBridgeNet(t, false), confDir: t.TempDir()}
	n.node.Run(t, "ip", "link", "set", "lo", "up")
	n.b.Extra["ipMasq"] = true
	pm := map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}}
	if backend != "" {
		n.b.Extra["ipMasqBackend"] = backend
		pm["backend"] = backend
	}
	n.list, _ = json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": n.b.Name, "plugins": []any{n.b.plugin(), pm}})
	n.file = filepath.Join(n.confDir, "10-"+n.b.Name+".conflist")
	if err := os.WriteFile(n.file, n.list, 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// add attaches a pod inside the node with one host port.
func (n *lsNode) add(t *testing.T, id string, hostPort uint16) harness.NetNS {
	t.Helper()
	pod := harness.NewNetNS(t, "lsp")
	caps := capArgs(portMapping{hostPort, 80, "tcp", ""})
	if err := n.node.Do(func() error { _, err := n.rt.Add(t, n.list, id, pod.Path, "eth0", caps); return err }); err != nil {
		t.Fatalf("ADD %s: %v", id, err)
	}
	// DEL at the end, before the namespaces go: the nftables masquerade keeps a record of the pod's
	// rules outside the node namespace (/run/netloom/masq), which deleting the node would leave behind.
	// A pod the test removed already makes it a no-op.
	t.Cleanup(func() { _ = n.node.Do(func() error { return n.rt.Del(t, n.list, id, pod.Path, "eth0", caps) }) })
	return pod
}

// awaitNoPorts waits until the node's bridge has no port left. The kernel destroys the links of a
// deleted namespace later, in a work queue (cleanup_net), so a pod's veth outlives `ip netns del` for
// a while, longer on a loaded machine; a check for leftovers that runs meanwhile finds it.
func (n *lsNode) awaitNoPorts(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := n.node.Exec("ip", "-o", "link", "show", "master", n.b.Bridge)
		if err == nil && strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bridge still has ports 10 s after the pod's namespace went: %s %v", out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ls runs `netloom ls` inside the node.
func (n *lsNode) ls(t *testing.T, args ...string) string {
	t.Helper()
	bin := filepath.Join(harness.PluginDir(t), "netloom")
	return n.node.Run(t, append([]string{bin, "ls", "--cache-dir", n.rt.CacheDir, "--conf-dir", n.confDir}, args...)...)
}

func (n *lsNode) inventory(t *testing.T) map[string]*inventory.Attachment {
	t.Helper()
	var inv inventory.Inventory
	out := n.ls(t, "--json")
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	byID := map[string]*inventory.Attachment{}
	for _, a := range inv.Network(n.b.Name) {
		byID[a.ContainerID] = a
	}
	return byID
}

func (n *lsNode) doctorNode(t *testing.T) *doctor.Node {
	t.Helper()
	list, err := libcni.ConfListFromFile(n.file)
	if err != nil {
		t.Fatal(err)
	}
	return &doctor.Node{Networks: []doctor.Network{{File: n.file, List: list}}, BinDirs: n.rt.Path, CacheDir: n.rt.CacheDir}
}

// leftovers runs the leftover check inside the node and returns its findings about this network.
func (n *lsNode) leftovers(t *testing.T, c doctor.Check, dn *doctor.Node) []doctor.Finding {
	t.Helper()
	var fs []doctor.Finding
	if err := n.node.Do(func() error { fs = c.Run(dn); return nil }); err != nil {
		t.Fatal(err)
	}
	var ours []doctor.Finding
	for _, f := range fs {
		if strings.Contains(f.Subject, n.b.Name) || strings.Contains(f.Subject, n.b.Bridge) {
			ours = append(ours, f)
		}
	}
	return ours
}

func findingAbout(fs []doctor.Finding, s string) (doctor.Finding, bool) {
	for _, f := range fs {
		if strings.Contains(f.Subject, s) {
			return f, true
		}
	}
	return doctor.Finding{}, false
}

// holdNamespace starts a process inside pod, so its namespace outlives `ip netns del`: a pod whose
// runtime lost track of it while something still runs in it. The process is killed by PID at cleanup.
func holdNamespace(t *testing.T, pod harness.NetNS) *exec.Cmd {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(pod.Path, &st); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", pod.Name, "sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release(cmd) })
	// `ip netns exec` enters the namespace after it starts: until then, deleting the namespace's
	// file would free it.
	want := fmt.Sprintf("net:[%d]", st.Ino)
	harness.WaitUntil(t, 10*time.Second, "the holder to enter "+pod.Name, func() (bool, string) {
		got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		return got == want, got
	})
	return cmd
}

func release(cmd *exec.Cmd) {
	if cmd.ProcessState == nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// TestLsAndLeftovers: pods made through libcni inside a node namespace are listed by `netloom ls` with
// their fields; pods gone without DEL show as dead (or uncached, when the runtime's cache lost them
// too); the leftover check names what they hold, its Fix removes it through DEL and GC, and the
// check then passes, the live pod untouched.
func TestLsAndLeftovers(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, backend := range portmapBackends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			n := newLSNode(t, harness.NewRuntime(t), backend)
			hp := hostPorts(4)
			idA, idB := harness.Unique("ctr-ls-alive"), harness.Unique("ctr-ls-dead")
			idC, idD := harness.Unique("ctr-ls-uncached"), harness.Unique("ctr-ls-held")
			podA := n.add(t, idA, hp)
			podB := n.add(t, idB, hp+1)
			podC := n.add(t, idC, hp+2)
			podD := n.add(t, idD, hp+3)
			podB.Delete(t) // gone without DEL
			podC.Delete(t) // gone without DEL, and the runtime lost its cache entry
			if err := os.Remove(filepath.Join(n.rt.CacheDir, "results", n.b.Name+"-"+idC+"-eth0")); err != nil {
				t.Fatal(err)
			}
			// C's lease is an old leak, not an ADD in progress (which the check spares).
			for _, l := range n.b.leases(t) {
				then := time.Now().Add(-10 * time.Minute)
				if err := os.Chtimes(filepath.Join(n.b.DataDir, n.b.Name, l), then, then); err != nil {
					t.Fatal(err)
				}
			}
			holder := holdNamespace(t, podD)
			podD.Delete(t) // its file is gone, a process keeps the namespace and so the veth

			atts := n.inventory(t)
			a := atts[idA]
			if a == nil {
				t.Fatalf("ls does not list the live pod %s: %+v", idA, atts)
			}
			wantRules := []string{backend + " masquerade", backend + " portmap"}
			if a.State != inventory.Alive || a.NetNS != podA.Path || a.IfName != "eth0" ||
				!slices.Equal(a.Plugins, []string{"bridge", "portmap"}) || len(a.Addresses) != 1 ||
				!strings.HasPrefix(a.Addresses[0].String(), strings.TrimSuffix(n.b.Subnets[0], "0/24")) ||
				len(a.HostPorts) != 1 || a.HostPorts[0].HostPort != int(hp) || a.HostIf == "" ||
				!slices.Contains(a.Sources, inventory.SourceLease) || !slices.Equal(a.Rules, wantRules) {
				t.Errorf("live pod: %+v (want rules %v)", a, wantRules)
			}
			for id, want := range map[string]inventory.State{idB: inventory.Dead, idC: inventory.Uncached, idD: inventory.Dead} {
				if g := atts[id]; g == nil || g.State != want || !slices.Contains(g.Sources, inventory.SourceLease) || len(g.Rules) == 0 {
					t.Errorf("%s: %+v, want %s with its lease and rules", id, g, want)
				}
			}
			table := n.ls(t)
			t.Logf("ls:\n%s", table)
			for _, s := range []string{idA, idB, idC, idD, "alive", "dead (netns " + podB.Path + " is gone)", "uncached"} {
				if !strings.Contains(table, s) {
					t.Errorf("ls table lacks %q:\n%s", s, table)
				}
			}

			check, dn := doctor.Leftovers(inventory.Dirs{}), n.doctorNode(t)
			fs := n.leftovers(t, check, dn)
			for _, id := range []string{idB, idC, idD} {
				if f, ok := findingAbout(fs, id); !ok || f.Status != doctor.Fail || !strings.Contains(f.Found, "leases") || !strings.Contains(f.Found, backend+" portmap") {
					t.Errorf("leftover of %s: %+v (found %v)", id, f, ok)
				}
			}
			if f, ok := findingAbout(fs, idC); ok && !strings.Contains(f.Fix, "GC of network") {
				t.Errorf("the uncached pod's fix: %q", f.Fix)
			}
			if f, ok := findingAbout(fs, idB); ok && !strings.Contains(f.Fix, "DEL with the runtime's cached config") {
				t.Errorf("the dead pod's fix: %q", f.Fix)
			}
			if _, ok := findingAbout(fs, idA); ok {
				t.Errorf("the live pod is reported: %+v", fs)
			}
			if f, ok := findingAbout(fs, "veth"); !ok || f.Status != doctor.Warn {
				t.Errorf("the held pod's veth is not reported: %+v", fs)
			}
			t.Logf("leftovers:\n%s", report(fs))

			var did []string
			err := n.node.Do(func() error { var err error; did, err = check.Fix(dn); return err })
			if err != nil {
				t.Fatalf("Fix: %v (did %v)", err, did)
			}
			t.Logf("fix:\n%s", strings.Join(did, "\n"))
			for _, want := range []string{"DEL " + n.b.Name + "/" + idB, "DEL " + n.b.Name + "/" + idD, "GC of network"} {
				if !slices.ContainsFunc(did, func(s string) bool { return strings.Contains(s, want) }) {
					t.Errorf("Fix did not %s: %v", want, did)
				}
			}
			// The held pod's veth stays: no plugin may remove a link whose pod still runs.
			fs = n.leftovers(t, check, dn)
			if len(fs) != 1 || !strings.Contains(fs[0].Subject, "veth") {
				t.Errorf("after the fix, want only the held pod's veth: %+v", fs)
			}
			release(holder)
			harness.WaitUntil(t, 10*time.Second, "the held pod's namespace to go", func() (bool, string) {
				fs = n.leftovers(t, check, dn)
				return len(fs) == 0, report(fs)
			})

			if got := n.b.leases(t); len(got) != 1 {
				t.Errorf("leases after the fix: %v, want only the live pod's", got)
			}
			for _, id := range []string{idB, idC, idD} {
				if out, _ := n.node.Exec("sh", "-c", "nft list ruleset; iptables-save -t nat"); strings.Contains(out, id) {
					t.Errorf("rules of %s are left:\n%s", id, out)
				}
			}
			if a := n.inventory(t)[idA]; a == nil || a.State != inventory.Alive {
				t.Errorf("the live pod after the fix: %+v", a)
			}
		})
	}
}

// TestLsReferencePod: a pod the reference plugins made is listed and, once gone, its leftovers are
// found and removed through the reference plugins' own DEL.
func TestLsReferencePod(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	ref := harness.NewRuntimeWithPath(t, harness.ReferenceSuite(t, "bridge", "host-local", "portmap"))
	n := newLSNode(t, ref, "")
	hp := hostPorts(1)
	id := harness.Unique("ctr-ls-ref")
	pod := n.add(t, id, hp)
	a := n.inventory(t)[id]
	if a == nil || a.State != inventory.Alive || len(a.Addresses) != 1 || len(a.HostPorts) != 1 ||
		!slices.Equal(a.Plugins, []string{"bridge", "portmap"}) || len(a.Rules) == 0 {
		t.Fatalf("the reference's pod: %+v", a)
	}
	t.Logf("ls:\n%s", n.ls(t))
	pod.Delete(t)
	n.awaitNoPorts(t)
	check, dn := doctor.Leftovers(inventory.Dirs{}), n.doctorNode(t)
	if f, ok := findingAbout(n.leftovers(t, check, dn), id); !ok || f.Status != doctor.Fail {
		t.Fatalf("the reference's dead pod: %+v", f)
	}
	if err := n.node.Do(func() error { _, err := check.Fix(dn); return err }); err != nil {
		t.Fatalf("Fix through the reference plugins: %v", err)
	}
	if got := n.b.leases(t); len(got) != 0 {
		t.Errorf("leases left: %v", got)
	}
	// The reference bridge's DEL leaves its masquerade chain when the pod's namespace is gone, and it
	// has no GC: the check still names the chain, a warning.
	fs := n.leftovers(t, check, dn)
	if len(fs) != 1 || fs[0].Status != doctor.Warn || !strings.Contains(fs[0].Subject, id) || !strings.Contains(fs[0].Found, "iptables masquerade rules") {
		t.Fatalf("after the reference's DEL: %s", report(fs))
	}
	// netloom's bridge GC removes it (a node that moved to netloom's plugins).
	dn.BinDirs = []string{harness.PluginDir(t)}
	if err := n.node.Do(func() error { _, err := check.Fix(dn); return err }); err != nil {
		t.Fatalf("Fix through netloom's plugins: %v", err)
	}
	if fs := n.leftovers(t, check, dn); len(fs) != 0 {
		t.Errorf("after netloom's GC: %s", report(fs))
	}
}

// TestDoctorOverlayPeers: a vxlan-overlay node whose peer route or FDB entry was removed is reported
// with the sync that fixes it; after the check's Fix it passes.
func TestDoctorOverlayPeers(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 3})
	o := newOverlayNet(t, c, "vxlan-overlay", map[string]any{"vni": 42})
	o.writePeers(0, 1, 2)
	o.addPod(t, 0)
	o.addPod(t, 1)
	node := c.Nodes[0]
	list, err := libcni.ConfListFromFile(o.conflistFile(0))
	if err != nil {
		t.Fatal(err)
	}
	dn := &doctor.Node{Networks: []doctor.Network{{File: o.conflistFile(0), List: list}}, CacheDir: o.rt.CacheDir}
	check := doctor.OverlayPeers()
	run := func() []doctor.Finding {
		var fs []doctor.Finding
		if err := node.Do(func() error { fs = check.Run(dn); return nil }); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	if fs := run(); len(fs) != 1 || fs[0].Status != doctor.OK {
		t.Fatalf("healthy node: %s", report(fs))
	}
	// Node 2 runs no pod yet: its tunnel device comes with the first ADD, a warning only.
	list2, err := libcni.ConfListFromFile(o.conflistFile(2))
	if err != nil {
		t.Fatal(err)
	}
	var fs2 []doctor.Finding
	// Each node has its own runtime cache; the test's runtime shares one for all nodes.
	dn2 := &doctor.Node{Networks: []doctor.Network{{File: o.conflistFile(2), List: list2}}, CacheDir: t.TempDir()}
	if err := c.Nodes[2].Do(func() error { fs2 = check.Run(dn2); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(fs2) != 1 || fs2[0].Status != doctor.Warn || !strings.Contains(fs2[0].Found, "does not exist") {
		t.Errorf("node without pods: %s", report(fs2))
	}

	peerCIDR := o.podCIDR(1)
	node.Run(t, "ip", "route", "del", peerCIDR)
	mac := overlay.VTEPMAC(o.nodeIP(1)).String()
	node.Run(t, "bridge", "fdb", "del", mac, "dev", vxlanDevice, "dst", o.nodeIP(1).String())

	fs := run()
	if len(fs) != 1 || fs[0].Status != doctor.Fail || !strings.Contains(fs[0].Found, peerCIDR) ||
		!strings.Contains(fs[0].Found, "fdb") || !strings.Contains(fs[0].Fix, "netloom overlay sync --conflist") {
		t.Fatalf("broken peer: %s", report(fs))
	}
	t.Logf("broken:\n%s", report(fs))
	var did []string
	if err := node.Do(func() error { var err error; did, err = check.Fix(dn); return err }); err != nil {
		t.Fatalf("Fix: %v", err)
	}
	if fs := run(); len(fs) != 1 || fs[0].Status != doctor.OK {
		t.Errorf("after the fix (%v): %s", did, report(fs))
	}
	// Node 1 leaves the peers: its entries on node 0 are stale, which costs no pod anything.
	o.writePeers(0, 2)
	if fs := run(); len(fs) != 1 || fs[0].Status != doctor.Warn || !strings.Contains(fs[0].Found, "remove route "+peerCIDR) {
		t.Errorf("a peer that left: %s", report(fs))
	} else {
		t.Logf("a peer that left:\n%s", report(fs))
	}
}

func report(fs []doctor.Finding) string {
	var b strings.Builder
	_ = doctor.Report{Findings: fs}.WriteTable(&b)
	return b.String()
}

// TestDoctorNetloomd: netloomd's check reports its BGP session established, then, once the peer
// stops, that no session is.
func TestDoctorNetloomd(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	_, b, pd, d := twoNodes(t, birdPeer)
	check := doctor.Netloomd(strings.TrimPrefix(d.Speaker(), "unix://"), "http://127.0.0.1:1")
	peer := b.Addr.Addr().String()
	fs := check.Run(&doctor.Node{})
	if len(fs) != 1 || fs[0].Status != doctor.OK || !strings.Contains(fs[0].Subject, peer) || fs[0].Found != "established" {
		t.Fatalf("session up: %s", report(fs))
	}
	t.Logf("up:\n%s", report(fs))
	pd.Stop(t)
	harness.WaitUntil(t, 30*time.Second, "the check to see the session down", func() (bool, string) {
		fs = check.Run(&doctor.Node{})
		return len(fs) == 1 && fs[0].Status == doctor.Fail && strings.Contains(fs[0].Found, "no session is established"), report(fs)
	})
	t.Logf("down:\n%s", report(fs))
}
