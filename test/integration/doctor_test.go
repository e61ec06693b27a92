package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/test/harness"
)

// doctorNode is a node network namespace with one bridge network (bridge, host-local, portmap) whose
// conflist sits in a private conf dir and whose plugins are linked into a private bin dir, and two pods:
// one with a hostPort, one without. netloom doctor runs inside the namespace as an operator would.
type doctorNode struct {
	node    harness.NetNS
	net     *bridgeNet
	confDir string
	binDir  string
	rt      *harness.Runtime
	hostIf  string // the host end of the hostPort pod's veth
	pod     harness.NetNS
	main    string // the network's first plugin
	extra   []map[string]any
}

// doctorReport is `netloom doctor --json`.
type doctorReport struct {
	Findings []struct {
		Check, Subject, Status, Found, Fix string
	}
}

// newDoctorNode sets up the node with a bridge network; extra plugins (e.g. firewall) go between bridge
// and portmap.
func newDoctorNode(t *testing.T, extra ...map[string]any) *doctorNode {
	t.Helper()
	return newDoctorNodeOf(t, "bridge", extra...)
}

// newDoctorNodeOf sets up the node with a network whose first plugin is main ("bridge" or "ptp").
func newDoctorNodeOf(t *testing.T, main string, extra ...map[string]any) *doctorNode {
	t.Helper()
	requirePortmapBackend(t, "nftables") // the network's conflist names it
	d := &doctorNode{node: harness.NewNetNS(t, "dnode"), net: newBridgeNet(t, true), confDir: t.TempDir(), binDir: t.TempDir(), main: main, extra: extra}
	d.node.Run(t, "ip", "link", "set", "lo", "up")
	for _, p := range []string{"bridge", "ptp", "host-local", "portmap", "firewall"} {
		if err := os.Symlink(filepath.Join(harness.PluginDir(t), p), filepath.Join(d.binDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	d.writeConflist(t, nil)
	d.rt = harness.NewRuntime(t)
	list := d.conflist(nil)
	for i, caps := range []map[string]any{capArgs(portMapping{hostPorts(1), 80, "tcp", ""}), nil} {
		pod := harness.NewNetNS(t, "dpod")
		id := harness.Unique("ctr-doctor")
		var res *current.Result
		err := d.node.Do(func() error {
			r, err := d.rt.Add(t, list, id, pod.Path, "eth0", caps)
			if err != nil {
				return err
			}
			res, err = current.NewResultFromResult(r)
			return err
		})
		if err != nil {
			t.Fatalf("ADD pod %d: %v", i, err)
		}
		t.Cleanup(func() {
			_ = d.node.Do(func() error { return d.rt.Del(t, list, id, pod.Path, "eth0", caps) })
		})
		if i == 0 {
			d.pod = pod
			for _, ifc := range res.Interfaces {
				if ifc.Sandbox == "" && ifc.Name != d.net.Bridge {
					d.hostIf = ifc.Name
				}
			}
		}
	}
	if d.hostIf == "" {
		t.Fatal("the hostPort pod's result names no host veth")
	}
	return d
}

// conflist is the network's conflist with change applied to the first plugin's config.
func (d *doctorNode) conflist(change func(map[string]any)) []byte {
	br := d.net.plugin()
	br["hairpinMode"] = true // as the example conflists: hostPort pods reach themselves
	if d.main == "ptp" {
		br = map[string]any{"type": "ptp", "ipam": br["ipam"]}
	}
	if change != nil {
		change(br)
	}
	plugins := []any{br}
	for _, p := range d.extra {
		plugins = append(plugins, p)
	}
	plugins = append(plugins, map[string]any{"type": "portmap", "backend": "nftables", "capabilities": map[string]bool{"portMappings": true}})
	out, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": d.net.Name, "plugins": plugins})
	return out
}

func (d *doctorNode) conflistFile() string { return filepath.Join(d.confDir, "10-doctor.conflist") }

func (d *doctorNode) writeConflist(t *testing.T, change func(map[string]any)) {
	t.Helper()
	if err := os.WriteFile(d.conflistFile(), d.conflist(change), 0o644); err != nil {
		t.Fatal(err)
	}
}

// table runs `netloom doctor` as a person would and returns what it prints (for the log: the README
// shows it).
func (d *doctorNode) table(t *testing.T) string {
	t.Helper()
	out, _ := d.node.Exec(filepath.Join(harness.PluginDir(t), "netloom"), "doctor",
		"--conf-dir", d.confDir, "--cni-bin-dir", d.binDir, "--cache-dir", d.rt.CacheDir)
	return out
}

// doctor runs `netloom doctor --json` in the node's namespace and returns its report and exit status.
// Flags in extra override the node's (the last of a flag wins).
func (d *doctorNode) doctor(t *testing.T, extra ...string) (doctorReport, int) {
	t.Helper()
	args := append([]string{"netns", "exec", d.node.Name, filepath.Join(harness.PluginDir(t), "netloom"), "doctor",
		"--conf-dir", d.confDir, "--cni-bin-dir", d.binDir, "--cache-dir", d.rt.CacheDir, "--json"}, extra...)
	cmd := exec.Command("ip", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("netloom doctor: %v: %s", err, stderr.String())
		}
		code = ee.ExitCode()
	}
	var r doctorReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("netloom doctor --json: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	return r, code
}

// requireHealthy runs the doctor and wants exit 0 and no finding worse than a warning.
func (d *doctorNode) requireHealthy(t *testing.T, why string) {
	t.Helper()
	r, code := d.doctor(t)
	var bad []string
	for _, f := range r.Findings {
		if f.Status == "fail" || f.Status == "unknown" {
			bad = append(bad, f.Check+" "+f.Subject+": "+f.Found)
		}
	}
	if code != 0 || len(bad) != 0 {
		t.Fatalf("%s: netloom doctor exits %d, want 0; findings:\n%s", why, code, strings.Join(bad, "\n"))
	}
}

// requireFail runs the doctor and wants exit 1 and a failed finding of check whose found and fix
// contain the given texts; it returns that finding's fix.
func (d *doctorNode) requireFail(t *testing.T, check, found, fix string) string {
	t.Helper()
	r, code := d.doctor(t)
	if code != 1 {
		t.Errorf("netloom doctor exits %d, want 1", code)
	}
	var seen []string
	for _, f := range r.Findings {
		if f.Check != check {
			continue
		}
		seen = append(seen, f.Status+": "+f.Found+" | fix: "+f.Fix)
		if f.Status == "fail" && strings.Contains(f.Found, found) && strings.Contains(f.Fix, fix) {
			return f.Fix
		}
	}
	t.Fatalf("no failed %s finding with %q and fix %q; the check found:\n%s", check, found, fix, strings.Join(seen, "\n"))
	return ""
}

// runFix runs a finding's fix command in the node, up to its parenthesised alternative.
func (d *doctorNode) runFix(t *testing.T, fix string) {
	t.Helper()
	cmd, _, _ := strings.Cut(fix, " (")
	d.node.Run(t, "sh", "-c", cmd)
}

// Each check of netloom doctor on a node: healthy first, then each thing broken on purpose, seen failing
// with its fix and exit status 1, then fixed (by the doctor's own fix command when it gives one) and seen
// passing.
func TestDoctor(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	d := newDoctorNode(t)
	d.requireHealthy(t, "a freshly set up node")
	t.Logf("netloom doctor on the healthy node:\n%s", d.table(t))
	subnet, subnet6 := d.net.Subnets[0], d.net.Subnets[1]

	t.Run("could not check", func(t *testing.T) {
		// A result cache that cannot be read: the checks that need it say so, and nothing fails.
		r, code := d.doctor(t, "--cache-dir", d.conflistFile())
		unknown := 0
		for _, f := range r.Findings {
			if f.Status == "unknown" && strings.Contains(f.Found, "cannot read the result cache") {
				unknown++
			}
		}
		if code != 2 || unknown == 0 {
			t.Errorf("with an unreadable cache: exit %d, %d unknown findings; want exit 2 and some: %+v", code, unknown, r.Findings)
		}
	})

	t.Run("plugin-binaries", func(t *testing.T) {
		bin := filepath.Join(d.binDir, "portmap")
		target, err := os.Readlink(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(bin); err != nil {
			t.Fatal(err)
		}
		d.requireFail(t, "plugin-binaries", "every ADD and DEL of this network fails", "install the portmap plugin binary as "+bin)

		// A portmap that cannot run, then one too old for the conflist's cniVersion.
		if err := os.WriteFile(bin, []byte("#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}'\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		d.requireFail(t, "plugin-binaries", "is not executable", "chmod 0755 "+bin)
		if err := os.Chmod(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		d.requireFail(t, "plugin-binaries", "answers VERSION with 0.4.0, 1.0.0, not the conflist's cniVersion 1.1.0", "install a portmap that supports 1.1.0")

		if err := os.Remove(bin); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, bin); err != nil {
			t.Fatal(err)
		}
		d.requireHealthy(t, "portmap reinstalled")
	})

	t.Run("conflist", func(t *testing.T) {
		d.writeConflist(t, func(br map[string]any) { br["vlan"] = 5000 })
		d.requireFail(t, "conflist", "vlan", "correct the key the message names in "+d.conflistFile())
		d.writeConflist(t, nil)
		d.requireHealthy(t, "conflist restored")
	})

	t.Run("forwarding", func(t *testing.T) {
		d.node.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")
		d.runFix(t, d.requireFail(t, "forwarding", "does not forward", "sysctl -w net.ipv4.ip_forward=1"))
		d.requireHealthy(t, "ip_forward back on")
		d.node.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
		d.runFix(t, d.requireFail(t, "forwarding", "does not forward", "sysctl -w net.ipv6.conf.all.forwarding=1"))
		d.requireHealthy(t, "IPv6 forwarding back on")
	})

	t.Run("forward-policy iptables", func(t *testing.T) {
		d.node.Run(t, "iptables-nft", "-P", "FORWARD", "DROP")
		t.Cleanup(func() { _, _ = d.node.Exec("iptables-nft", "-P", "FORWARD", "ACCEPT") })
		fix := d.requireFail(t, "forward-policy", "iptables-nft FORWARD (policy drop) drops", "iptables-nft -I FORWARD -s "+subnet+" -j ACCEPT")
		// The policy also drops what one pod sends another on the bridge: br_netfilter hands it to FORWARD.
		d.requireFail(t, "br-netfilter", "cannot talk to each other", "sysctl -w net.bridge.bridge-nf-call-iptables=0")
		t.Logf("netloom doctor with FORWARD's policy DROP:\n%s", d.table(t))
		d.node.Run(t, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0")
		r, _ := d.doctor(t)
		for _, f := range r.Findings {
			if f.Check == "br-netfilter" && f.Status != "ok" {
				t.Errorf("br-netfilter with bridge-nf-call-iptables=0: %s %s", f.Status, f.Found)
			}
		}
		d.node.Run(t, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
		d.runFix(t, fix)
		d.requireHealthy(t, "policy DROP with the pod subnet accepted")
		d.node.Run(t, "iptables-nft", "-P", "FORWARD", "ACCEPT")

		d.node.Run(t, "ip6tables-nft", "-P", "FORWARD", "DROP")
		t.Cleanup(func() { _, _ = d.node.Exec("ip6tables-nft", "-P", "FORWARD", "ACCEPT") })
		d.runFix(t, d.requireFail(t, "forward-policy", "ip6tables-nft FORWARD (policy drop) drops", "ip6tables-nft -I FORWARD -s "+subnet6+" -j ACCEPT"))
		d.requireHealthy(t, "IPv6 policy DROP with the pod subnet accepted")
		d.node.Run(t, "ip6tables-nft", "-P", "FORWARD", "ACCEPT")

		// The legacy build's tables are the kernel's own, apart from nf_tables: the doctor reads both.
		d.node.Run(t, "iptables-legacy", "-P", "FORWARD", "DROP")
		t.Cleanup(func() { _, _ = d.node.Exec("iptables-legacy", "-P", "FORWARD", "ACCEPT") })
		d.runFix(t, d.requireFail(t, "forward-policy", "iptables-legacy FORWARD (policy drop) drops", "iptables-legacy -I FORWARD -s "+subnet+" -j ACCEPT"))
		d.requireHealthy(t, "legacy policy DROP with the pod subnet accepted")
		d.node.Run(t, "iptables-legacy", "-P", "FORWARD", "ACCEPT")
		d.node.Run(t, "iptables-legacy", "-F", "FORWARD")

		// RHEL's default: an ACCEPT policy, and a final rule that rejects what nothing accepted before.
		d.node.Run(t, "iptables-nft", "-F", "FORWARD") // the accepts the fixes above inserted
		d.node.Run(t, "iptables-nft", "-A", "FORWARD", "-j", "REJECT", "--reject-with", "icmp-host-prohibited")
		t.Cleanup(func() { _, _ = d.node.Exec("iptables-nft", "-F", "FORWARD") })
		d.runFix(t, d.requireFail(t, "forward-policy", "iptables-nft FORWARD (rule -A FORWARD -j REJECT --reject-with icmp-host-prohibited) drops",
			"iptables-nft -I FORWARD -s "+subnet+" -j ACCEPT"))
		d.requireHealthy(t, "the pod subnet accepted before the REJECT")
		d.node.Run(t, "iptables-nft", "-F", "FORWARD")
	})

	t.Run("forward-policy nftables", func(t *testing.T) {
		table := harness.Unique("dfw")
		d.node.Run(t, "nft", "add table inet "+table+"; add chain inet "+table+" fw { type filter hook forward priority 0; policy drop; }")
		t.Cleanup(func() { _, _ = d.node.Exec("nft", "delete", "table", "inet", table) })
		// An inet chain judges both families: one finding, and one fix, per pod subnet.
		d.runFix(t, d.requireFail(t, "forward-policy", "nft inet "+table+" fw (policy drop) drops forwarded packets and accepts nothing from or to "+subnet,
			"nft insert rule inet "+table+" fw ip saddr "+subnet+" accept"))
		d.runFix(t, d.requireFail(t, "forward-policy", "nft inet "+table+" fw (policy drop) drops forwarded packets and accepts nothing from or to "+subnet6,
			"nft insert rule inet "+table+" fw ip6 saddr "+subnet6+" accept"))
		d.requireHealthy(t, "nftables forward chain accepting the pod subnets")
		d.node.Run(t, "nft", "delete", "table", "inet", table)
	})

	t.Run("pod-cidrs", func(t *testing.T) {
		other := harness.Unique("dxbr")
		d.node.Run(t, "ip", "link", "add", other, "type", "bridge")
		d.node.Run(t, "ip", "link", "set", other, "up")
		t.Cleanup(func() { _, _ = d.node.Exec("ip", "link", "del", other) })
		inside := strings.Replace(subnet, ".0/24", ".64/26", 1)
		d.node.Run(t, "ip", "route", "add", inside, "dev", other)
		d.runFix(t, d.requireFail(t, "pod-cidrs", "overlaps the pod subnet", "ip route del "+inside+" dev "+other))
		d.requireHealthy(t, "the overlapping route removed")
	})

	t.Run("hairpin", func(t *testing.T) {
		d.node.Run(t, "bridge", "link", "set", "dev", d.hostIf, "hairpin", "off")
		d.runFix(t, d.requireFail(t, "hairpin", "hairpin off", "bridge link set dev "+d.hostIf+" hairpin on"))
		d.requireHealthy(t, "hairpin back on")
	})

	t.Run("mtu", func(t *testing.T) {
		d.node.Run(t, "ip", "link", "set", d.net.Bridge, "mtu", "1400")
		d.runFix(t, d.requireFail(t, "mtu", "has mtu 1500, its bridge 1400", "ip link set "+d.net.Bridge+" mtu 1500"))
		d.requireHealthy(t, "bridge mtu restored")

		d.pod.Run(t, "ip", "link", "set", "eth0", "mtu", "9000")
		d.runFix(t, d.requireFail(t, "mtu", "pod interface mtu 9000 exceeds bridge "+d.net.Bridge+"'s 1500",
			"nsenter --net="+d.pod.Path+" ip link set eth0 mtu 1500"))
		d.requireHealthy(t, "pod mtu restored")
	})
}

// With the firewall plugin in the chain, a FORWARD policy of DROP is what it is for: the doctor finds the
// plugin's per-pod accepts (iptables: CNI-FORWARD, jumped to from FORWARD; nftables: its own forward
// chain) and reports the node healthy.
func TestDoctorFirewallPlugin(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			d := newDoctorNode(t, map[string]any{"type": "firewall", "backend": backend})
			if backend == "iptables" {
				d.node.Run(t, "iptables", "-P", "FORWARD", "DROP")
				d.node.Run(t, "ip6tables", "-P", "FORWARD", "DROP")
			} else {
				d.node.Run(t, "nft", "add chain inet cni_firewall forward { policy drop; }")
			}
			d.requireHealthy(t, "FORWARD dropping by policy, the firewall plugin accepting the pods")
			r, _ := d.doctor(t)
			for _, f := range r.Findings {
				if f.Check == "forward-policy" && !strings.Contains(f.Found, "accepts it") {
					t.Errorf("forward-policy %s: %s, want the accepting rule named", f.Subject, f.Found)
				}
			}
			t.Logf("netloom doctor, %s:\n%s", backend, d.table(t))
		})
	}
}

// A ptp node reports healthy: its per-pod routes on the pods' veths lie inside the pod subnet and are
// its own, not routes stealing it.
func TestDoctorPtp(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	d := newDoctorNodeOf(t, "ptp")
	d.requireHealthy(t, "a ptp node")
	r, _ := d.doctor(t)
	checked := 0
	for _, f := range r.Findings {
		if f.Check == "pod-cidrs" && strings.Contains(f.Subject, d.net.Subnets[0]) {
			checked++
		}
	}
	if checked != 1 {
		t.Errorf("pod-cidrs did not check %s: %+v", d.net.Subnets[0], r.Findings)
	}
	t.Logf("netloom doctor on a ptp node:\n%s", d.table(t))
}

// netloom doctor on a node of a vxlan-overlay cluster: the tunnel's MTU against its underlay's minus the
// encapsulation, and the pod's against the tunnel's, each broken and then fixed with the doctor's fix.
func TestDoctorOverlay(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	o := newOverlayNet(t, c, "vxlan-overlay", nil)
	o.writePeers(0, 1)
	pod := o.addPod(t, 0)
	t.Cleanup(func() {
		_ = c.Nodes[0].Do(func() error { return o.rt.Del(t, o.conflist(0), pod.id, pod.Path, "eth0", nil) })
	})
	d := &doctorNode{node: c.Nodes[0].NetNS, confDir: t.TempDir(), binDir: t.TempDir(), rt: o.rt}
	for _, p := range []string{"vxlan-overlay", "host-local"} {
		if err := os.Symlink(filepath.Join(harness.PluginDir(t), p), filepath.Join(d.binDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d.confDir, "10-overlay.conflist"), o.conflist(0), 0o644); err != nil {
		t.Fatal(err)
	}
	d.requireHealthy(t, "a node of the overlay")
	t.Logf("netloom doctor on an overlay node:\n%s", d.table(t))
	const tunnel = "nlvx.1"

	// The kernel refuses a VXLAN MTU above its underlay's room, but not an underlay lowered under it.
	d.node.Run(t, "ip", "link", "set", "eth0", "mtu", "1400")
	d.runFix(t, d.requireFail(t, "mtu", "mtu 1450, but eth0 (mtu 1400) carries 1350", "ip link set "+tunnel+" mtu 1350"))

	// The tunnel fits again; the pod, still at 1450, does not.
	d.runFix(t, d.requireFail(t, "mtu", "pod interface mtu 1450 exceeds vxlan "+tunnel+"'s 1350", "nsenter --net="+pod.Path+" ip link set eth0 mtu 1350"))
	d.requireHealthy(t, "tunnel and pod lowered to the underlay")
	d.node.Run(t, "ip", "link", "set", "eth0", "mtu", "1500")
	d.requireHealthy(t, "underlay restored")
}
