package bench

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netloom/netloom/test/harness"
)

// Host-local lease benchmark: addresses, the leases already on the node, and runs per measurement.
const (
	leasesNetwork = "nlleases"
	leasesSubnet  = "10.220.0.0/16"
	leasesRuns    = 30
	// leasesFirst is the first address host-local hands out in leasesSubnet: .1 is the gateway.
	leasesFirst = "10.220.0.2"
)

// pluginExecTimeout bounds one direct plugin execution.
const pluginExecTimeout = 2 * time.Minute

// BenchmarkHostLocalLeases measures host-local ADD and DEL of one container, executed directly as a
// delegating plugin would, with 0 and 10,000 leases already in the network's directory (written in the
// on-disk format both suites share, with last_reserved_ip pointing at the newest, as on a busy node).
// Every run goes through all four cases in turn (each lease count, netloom and the reference), so the
// two lease counts are measured under the same load: the goal's ratio compares them. Wall time and the
// process's CPU time are both recorded; CPU time is the steadier of the two on a shared machine.
func BenchmarkHostLocalLeases(b *testing.B) {
	harness.RequireRoot(b)
	bins := map[string]string{
		suiteNetloom:   filepath.Join(harness.PluginDir(b), "host-local"),
		suiteReference: filepath.Join(harness.ReferencePlugin(b, "host-local"), "host-local"),
	}
	suites := []string{suiteNetloom, suiteReference}
	counts := []int{0, 10000}
	type sample struct{ add, del, addCPU, delCPU []time.Duration }
	type key struct {
		existing int
		suite    string
	}
	pod := harness.NewNetNS(b, "hlp") // CNI_NETNS must name a namespace; host-local never enters it
	stdin := map[key][]byte{}
	for _, existing := range counts {
		for _, s := range suites {
			dataDir := b.TempDir()
			if err := writeLeases(dataDir, leasesNetwork, existing); err != nil {
				b.Fatal(err)
			}
			stdin[key{existing, s}] = ipamConf(leasesNetwork, dataDir, leasesSubnet)
		}
	}
	got := map[key]*sample{}
	for run := range leasesRuns {
		for _, existing := range counts {
			for _, s := range suites {
				k := key{existing, s}
				if got[k] == nil {
					got[k] = &sample{}
				}
				env := map[string]string{"CNI_CONTAINERID": fmt.Sprintf("extra-%d", run), "CNI_NETNS": pod.Path,
					"CNI_IFNAME": "eth0", "CNI_PATH": filepath.Dir(bins[s])}
				env["CNI_COMMAND"] = "ADD"
				t0 := time.Now()
				out, addCPU, err := execWithRusage(bins[s], env, stdin[k])
				if err != nil {
					b.Fatalf("%s host-local ADD with %d leases: %v: %s", s, existing, err, out)
				}
				t1 := time.Now()
				env["CNI_COMMAND"] = "DEL"
				out, delCPU, err := execWithRusage(bins[s], env, stdin[k])
				if err != nil {
					b.Fatalf("%s host-local DEL with %d leases: %v: %s", s, existing, err, out)
				}
				g := got[k]
				g.add, g.del = append(g.add, t1.Sub(t0)), append(g.del, time.Since(t1))
				g.addCPU, g.delCPU = append(g.addCPU, addCPU), append(g.delCPU, delCPU)
			}
		}
	}
	for _, existing := range counts {
		scenario := fmt.Sprintf("host-local, %d leases", existing)
		for _, s := range suites {
			g := got[key{existing, s}]
			both := make([]time.Duration, len(g.add))
			for i := range both {
				both[i] = g.add[i] + g.del[i]
			}
			results.record(scenario, "ADD p50", "ms", s, ms(percentile(g.add, 50)), false)
			results.record(scenario, "DEL p50", "ms", s, ms(percentile(g.del, 50)), false)
			results.record(scenario, "ADD+DEL p50", "ms", s, ms(percentile(both, 50)), false)
			results.record(scenario, "ADD CPU p50", "ms", s, ms(percentile(g.addCPU, 50)), false)
			results.record(scenario, "DEL CPU p50", "ms", s, ms(percentile(g.delCPU, 50)), false)
			b.ReportMetric(ms(percentile(g.add, 50)), fmt.Sprintf("%s-%d-add-p50-ms", s, existing))
		}
	}
	empty, full := got[key{0, suiteNetloom}], got[key{counts[1], suiteNetloom}]
	results.goal(goalEntry{
		Goal:   "1 flat as the node fills",
		Metric: fmt.Sprintf("host-local ADD p50, %d leases / none", counts[1]),
		Value:  ms(percentile(full.add, 50)) / ms(percentile(empty.add, 50)), Target: 1.2, AtMost: true,
		Basis: fmt.Sprintf("netloom %.1f ms with %d leases, %.1f ms with none, %d runs interleaved; CPU %.1f / %.1f ms (%.2fx); the reference %.1f / %.1f ms",
			ms(percentile(full.add, 50)), counts[1], ms(percentile(empty.add, 50)), leasesRuns,
			ms(percentile(full.addCPU, 50)), ms(percentile(empty.addCPU, 50)),
			ms(percentile(full.addCPU, 50))/ms(percentile(empty.addCPU, 50)),
			ms(percentile(got[key{counts[1], suiteReference}].add, 50)), ms(percentile(got[key{0, suiteReference}].add, 50))),
	})
}

// ipamConf is the network config a main plugin hands host-local: its own keys and the ipam section.
func ipamConf(network, dataDir, subnet string) []byte {
	out, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": network, "type": "bridge",
		"ipam": map[string]any{"type": "host-local", "dataDir": dataDir,
			"ranges": [][]map[string]string{{{"subnet": subnet}}}},
	})
	return out
}

// writeLeases fills <dataDir>/<network> with n leases from leasesFirst on, each a file named by the
// address holding "<containerID>\r\n<ifname>" (pkg/ipam/store.go, the reference's format), and points
// last_reserved_ip.0 at the last of them.
func writeLeases(dataDir, network string, n int) error {
	dir := filepath.Join(dataDir, network)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("leases: %w", err)
	}
	addr := netip.MustParseAddr(leasesFirst)
	var last netip.Addr
	for i := range n {
		body := fmt.Sprintf("filler-%d\r\neth0", i)
		if err := os.WriteFile(filepath.Join(dir, addr.String()), []byte(body), 0o600); err != nil {
			return fmt.Errorf("lease %d: %w", i, err)
		}
		last, addr = addr, addr.Next()
	}
	if n > 0 {
		if err := os.WriteFile(filepath.Join(dir, "last_reserved_ip.0"), []byte(last.String()), 0o600); err != nil {
			return fmt.Errorf("last reserved: %w", err)
		}
	}
	return nil
}

// execWithRusage runs a plugin binary with only the CNI variables in env (plus PATH) and stdin, and
// returns its stdout and the CPU time it (and the children it waited for) used. Its Maxrss is not the
// plugin's: Go starts a process with vfork, and the kernel carries the parent's peak RSS over into
// the child at exec, so every child of the test process reports at least the test process's RSS.
func execWithRusage(bin string, env map[string]string, stdin []byte) ([]byte, time.Duration, error) {
	out, ru, err := runCNI([]string{bin}, env, stdin)
	var cpu time.Duration
	if ru != nil {
		cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	}
	return out, cpu, err
}

// peakRSS runs a plugin binary as execWithRusage does, under GNU time (timeBin), which starts it with
// a real fork: the peak RSS time reports (KiB) is then the plugin's own, or its waited-for children's
// if larger, above a floor of time's own RSS (about 1 MiB).
func peakRSS(timeBin, bin string, env map[string]string, stdin []byte) ([]byte, int64, error) {
	f, err := os.CreateTemp("", "nlbench-rss-")
	if err != nil {
		return nil, 0, fmt.Errorf("peak RSS: %w", err)
	}
	name := f.Name()
	_ = f.Close()
	defer os.Remove(name)
	out, _, err := runCNI([]string{timeBin, "-f", "%M", "-o", name, bin}, env, stdin)
	if err != nil {
		return out, 0, err
	}
	text, err := os.ReadFile(name)
	if err != nil {
		return out, 0, fmt.Errorf("peak RSS: %w", err)
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64)
	if err != nil {
		return out, 0, fmt.Errorf("peak RSS: %s printed %q: %w", timeBin, text, err)
	}
	return out, kib, nil
}

// runCNI executes argv with only the CNI variables in env (plus PATH) and stdin, and returns stdout
// and the process's resource usage.
func runCNI(argv []string, env map[string]string, stdin []byte) ([]byte, *syscall.Rusage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pluginExecTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ru *syscall.Rusage
	if cmd.ProcessState != nil {
		ru, _ = cmd.ProcessState.SysUsage().(*syscall.Rusage)
	}
	if err != nil {
		return stdout.Bytes(), ru, fmt.Errorf("%s %s: %w (stderr: %q)", filepath.Base(argv[len(argv)-1]), env["CNI_COMMAND"], err, stderr.String())
	}
	return stdout.Bytes(), ru, nil
}

// costRuns is how many ADDs and DELs of each plugin BenchmarkPluginCost measures per suite; costVMRuns
// the same in the VM lane, where qemu emulates the CPU and every exec is 10-35x slower.
const (
	costRuns   = 15
	costVMRuns = 7
)

// Addresses of the cost fixtures: the pod's veth for the chained plugins, and each IPAM's subnet.
const (
	costPodGateway = "10.224.0.1"
	costPodAddr    = "10.224.0.2"
	costPodPrefix  = "/24"
	costNetwork    = "nlcost"
)

// costSuites are the suites BenchmarkPluginCost alternates, run by run.
var costSuites = []string{suiteNetloom, suiteReference}

// costFixture is what one subject's ADDs act on: a node namespace the plugin runs in, a pod namespace
// CNI_NETNS names, and what the subject's setup made in them.
type costFixture struct {
	bins      *costBins
	node, pod harness.NetNS
	dataDir   map[string]string // host-local's, per suite
	dhcpSock  map[string]string // the suite's dhcp daemon
	master    string            // a node link for macvlan, ipvlan and vlan
	device    string            // the node link host-device moves
	bridge    string            // the bridge plugin's bridge
	hostVeth  string            // the node end of the pod's eth0 (chained plugins)
}

// costKernel is a link kind a subject's plugin makes that a kernel may lack (its module not built or
// not installed); parent: the kind needs a lower link. A subject with one is measured in the VM lane
// where this kernel lacks it.
type costKernel struct {
	kind   string
	parent bool
	args   []string
}

// costSubject is one plugin BenchmarkPluginCost measures: a realistic ADD config and what the node and
// the pod need for it (a chained plugin gets the prevResult of a routed veth pod).
type costSubject struct {
	plugin string
	ipam   string      // the IPAM plugin the ADD delegates to and waits for ("" none)
	kernel *costKernel // nil: every kernel the suite runs on has what it needs
	// setup prepares the fixture once; prepare (optional) puts the pod back as the previous plugin of
	// the chain left it before every ADD, outside the measurement.
	setup   func(b *testing.B, f *costFixture)
	prepare func(f *costFixture) error
	conf    func(f *costFixture, suite string) map[string]any
}

// scenario names the subject's rows: "<plugin> process", with the IPAM child it waits for, and, in
// the VM lane, "(VM)": figures from the VM compare netloom with the reference inside the VM only.
func (s costSubject) scenario(inVM bool) string {
	name := s.plugin + " process"
	if s.ipam != "" {
		name += " (+ its " + s.ipam + ")"
	}
	if inVM {
		name += " (VM)"
	}
	return name
}

// goalMetric is the subject's goal-4 metric; the VM's carry "(VM)".
func (s costSubject) goalMetric(inVM bool) string {
	m := s.plugin + " peak RSS p50 netloom/reference"
	if inVM {
		m += " (VM)"
	}
	return m
}

// hostLocalIPAM is a host-local section leasing from subnet under the suite's dataDir.
func hostLocalIPAM(f *costFixture, suite, subnet string) map[string]any {
	return map[string]any{"type": "host-local", "dataDir": f.dataDir[suite],
		"ranges": [][]map[string]string{{{"subnet": subnet}}}}
}

// costPrevResult is what a routed veth pod's attachment plugin (ptp, bridge) returns: the node end, the
// pod's eth0 with its address, gateway and default route.
func costPrevResult(f *costFixture) map[string]any {
	return map[string]any{
		"cniVersion": "1.1.0",
		"interfaces": []map[string]any{{"name": f.hostVeth}, {"name": "eth0", "sandbox": f.pod.Path}},
		"ips": []map[string]any{{"address": costPodAddr + costPodPrefix, "gateway": costPodGateway,
			"interface": 1}},
		"routes": []map[string]any{{"dst": "0.0.0.0/0", "gw": costPodGateway}},
	}
}

// costVethPod gives the pod an eth0 as ptp would: a veth whose node end holds the gateway address, the
// pod end the pod's address and a default route through it.
func costVethPod(b *testing.B, f *costFixture) {
	f.hostVeth = harness.Unique("nlcv")
	if err := costMakeVeth(f); err != nil {
		b.Fatal(err)
	}
}

func costMakeVeth(f *costFixture) error {
	for _, c := range []struct {
		in  harness.NetNS
		cmd []string
	}{
		{f.node, []string{"ip", "link", "add", f.hostVeth, "type", "veth", "peer", "name", "eth0", "netns", f.pod.Name}},
		{f.node, []string{"ip", "addr", "add", costPodGateway + costPodPrefix, "dev", f.hostVeth}},
		{f.node, []string{"ip", "link", "set", f.hostVeth, "up"}},
		{f.pod, []string{"ip", "addr", "add", costPodAddr + costPodPrefix, "dev", "eth0"}},
		{f.pod, []string{"ip", "link", "set", "eth0", "up"}},
		{f.pod, []string{"ip", "route", "add", "default", "via", costPodGateway}},
	} {
		if _, err := c.in.Exec(c.cmd...); err != nil {
			return err
		}
	}
	return nil
}

// costRemakeVeth replaces the pod's veth with a fresh one before an ADD of a plugin whose DEL leaves
// state on the pod's links (the reference's bandwidth its tbf on the node end, sbr its routes in the
// pod's table): on a node the attachment plugin's DEL removes the veth after them.
func costRemakeVeth(f *costFixture) error {
	_, _ = f.node.Exec("ip", "link", "del", f.hostVeth)
	return costMakeVeth(f)
}

// costNodeVeth makes a veth pair in the node namespace and returns one end, up: a master for macvlan,
// ipvlan and vlan, or a device for host-device.
func costNodeVeth(b *testing.B, f *costFixture, prefix string) string {
	name, peer := harness.Unique(prefix), harness.Unique(prefix+"p")
	f.node.Run(b, "ip", "link", "add", name, "type", "veth", "peer", "name", peer)
	f.node.Run(b, "ip", "link", "set", name, "up")
	f.node.Run(b, "ip", "link", "set", peer, "up")
	return name
}

// costDHCP serves DHCP to the pod: a LAN namespace with dnsmasq behind a veth whose node end (in the
// host namespace, where harness.NewDHCPLAN puts it) carries a macvlan moved into the pod as eth0, as
// macvlan does before it calls dhcp; and each suite's daemon.
func costDHCP(b *testing.B, f *costFixture) {
	lan := harness.NewDHCPLAN(b, 234, 1)
	mv := harness.Unique("nlcd")
	harness.HostRun(b, "ip", "link", "add", mv, "link", lan.Master, "type", "macvlan", "mode", "bridge")
	harness.RemoveLinkOnCleanup(b, mv) // if moving it fails; in the pod it goes with the pod
	harness.HostRun(b, "ip", "link", "set", mv, "netns", f.pod.Name)
	f.pod.Run(b, "ip", "link", "set", mv, "name", "eth0")
	f.pod.Run(b, "ip", "link", "set", "eth0", "up")
	f.dhcpSock = map[string]string{}
	for _, s := range costSuites {
		bin := filepath.Join(f.bins.pluginDir(b, s, "dhcp"), "dhcp")
		f.dhcpSock[s] = harness.StartDHCPDaemon(b, f.node, bin).DHCPSocket()
	}
}

func costSubjects() []costSubject {
	chained := func(plugin string, keys map[string]any) costSubject {
		return costSubject{plugin: plugin, setup: costVethPod, conf: func(f *costFixture, _ string) map[string]any {
			m := map[string]any{"prevResult": costPrevResult(f)}
			for k, v := range keys {
				m[k] = v
			}
			return m
		}}
	}
	withHostLocal := func(plugin, subnet string, keys func(f *costFixture) map[string]any) costSubject {
		return costSubject{plugin: plugin, ipam: "host-local", conf: func(f *costFixture, s string) map[string]any {
			m := map[string]any{"ipam": hostLocalIPAM(f, s, subnet)}
			for k, v := range keys(f) {
				m[k] = v
			}
			return m
		}}
	}
	none := func(*costFixture) map[string]any { return nil }

	bridge := withHostLocal("bridge", "10.221.0.0/16", func(f *costFixture) map[string]any {
		return map[string]any{"bridge": f.bridge, "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true}
	})
	bridge.setup = func(b *testing.B, f *costFixture) { f.bridge = harness.Unique("nlsb") }
	ptp := withHostLocal("ptp", "10.225.0.0/16", func(*costFixture) map[string]any {
		return map[string]any{"ipMasq": true}
	})
	macvlan := withHostLocal("macvlan", "10.226.0.0/16", func(f *costFixture) map[string]any {
		return map[string]any{"master": f.master, "mode": "bridge"}
	})
	macvlan.setup = func(b *testing.B, f *costFixture) { f.master = costNodeVeth(b, f, "nlcm") }
	ipvlan := withHostLocal("ipvlan", "10.227.0.0/16", func(f *costFixture) map[string]any {
		return map[string]any{"master": f.master, "mode": "l2"}
	})
	ipvlan.setup, ipvlan.kernel = macvlan.setup, &costKernel{kind: "ipvlan", parent: true, args: []string{"mode", "l2"}}
	vlan := withHostLocal("vlan", "10.228.0.0/16", func(f *costFixture) map[string]any {
		return map[string]any{"master": f.master, "vlanId": 100}
	})
	vlan.setup, vlan.kernel = macvlan.setup, &costKernel{kind: "vlan", parent: true, args: []string{"id", "5"}}
	hostDevice := withHostLocal("host-device", "10.229.0.0/16", func(f *costFixture) map[string]any {
		return map[string]any{"device": f.device}
	})
	hostDevice.setup = func(b *testing.B, f *costFixture) { f.device = costNodeVeth(b, f, "nlch") }
	dummy := withHostLocal("dummy", "10.230.0.0/16", none)
	dummy.kernel = &costKernel{kind: "dummy"}
	tap := withHostLocal("tap", "10.231.0.0/16", none)

	vrf := chained("vrf", map[string]any{"vrfname": "nlcost"})
	vrf.prepare, vrf.kernel = costRemakeVeth, &costKernel{kind: "vrf", args: []string{"table", "10"}}
	sbr := chained("sbr", nil)
	sbr.prepare = costRemakeVeth
	bandwidth := chained("bandwidth", map[string]any{"ingressRate": 100_000_000, "ingressBurst": 1_000_000,
		"egressRate": 100_000_000, "egressBurst": 1_000_000})
	bandwidth.prepare = costRemakeVeth

	return []costSubject{
		bridge, ptp, macvlan, ipvlan, vlan, hostDevice, dummy, tap,
		{plugin: "loopback", conf: func(*costFixture, string) map[string]any { return nil }},
		{plugin: "host-local", conf: func(f *costFixture, s string) map[string]any {
			return map[string]any{"type": "bridge", "ipam": hostLocalIPAM(f, s, "10.222.0.0/16")}
		}},
		{plugin: "static", conf: func(*costFixture, string) map[string]any {
			return map[string]any{"type": "bridge", "ipam": map[string]any{"type": "static",
				"addresses": []map[string]any{{"address": "10.232.0.5/24", "gateway": "10.232.0.1"}},
				"routes":    []map[string]any{{"dst": "0.0.0.0/0"}},
				"dns":       map[string]any{"nameservers": []string{"10.232.0.53"}}}}
		}},
		{plugin: "dhcp", setup: costDHCP, conf: func(f *costFixture, s string) map[string]any {
			return map[string]any{"type": "macvlan", "ipam": map[string]any{"type": "dhcp",
				"daemonSocketPath": f.dhcpSock[s], "request": []any{map[string]any{"option": "6"}}}}
		}},
		// One mapping, no backend: each suite runs its default.
		chained("portmap", map[string]any{"runtimeConfig": map[string]any{"portMappings": []map[string]any{
			{"hostPort": 40080, "containerPort": 80, "protocol": "tcp"}}}}),
		chained("firewall", map[string]any{"backend": "iptables"}),
		chained("tuning", map[string]any{"mtu": 1400, "promisc": true,
			"sysctl": map[string]string{"net.ipv4.conf.eth0.arp_notify": "1"}}),
		bandwidth, sbr, vrf,
	}
}

// costStdin is the subject's ADD (and DEL) config for suite: cniVersion, name and type around conf's keys
// (a "type" among them wins: IPAM plugins are called with their main plugin's config).
func costStdin(subj costSubject, f *costFixture, suite string) []byte {
	m := map[string]any{"cniVersion": "1.1.0", "name": costNetwork, "type": subj.plugin}
	for k, v := range subj.conf(f, suite) {
		m[k] = v
	}
	out, _ := json.Marshal(m)
	return out
}

// kernelHas says whether this kernel can make a link of k's kind, tried in a throwaway namespace (on a
// veth when the kind needs a lower link).
func kernelHas(b *testing.B, k *costKernel) bool {
	if k == nil {
		return true
	}
	if !k.parent {
		return harness.LinkKindAvailable(b, k.kind, k.args...)
	}
	n := harness.NewNetNS(b, "cprobe")
	defer n.Delete(b)
	n.Run(b, "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
	_, err := n.Exec(append([]string{"ip", "link", "add", "probe2", "link", "probe0", "type", k.kind}, k.args...)...)
	return err == nil
}

// costVMResults is the JSON report of the VM lane's BenchmarkPluginCost run, named by
// $NETLOOM_BENCH_VM_JSON (make bench writes it first): the rows and goals of the subjects this kernel
// cannot run, folded into this run's report as the VM's own netloom-vs-reference figures.
func costVMResults(b *testing.B) (rows []reportRow, goals []goalEntry, why string) {
	path := os.Getenv("NETLOOM_BENCH_VM_JSON")
	if path == "" {
		return nil, nil, "this kernel lacks it and NETLOOM_BENCH_VM_JSON names no VM-lane report (make bench runs the VM lane)"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Sprintf("this kernel lacks it and the VM-lane report is unreadable: %v", err)
	}
	var rep struct {
		Rows  []reportRow `json:"rows"`
		Goals []goalEntry `json:"goals"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		b.Fatalf("VM-lane report %s: %v", path, err)
	}
	return rep.Rows, rep.Goals, ""
}

// BenchmarkPluginCost measures, for every plugin both suites have, the CPU time (user + system) of one
// ADD process and the peak RSS of its ADD and of its DEL (with the IPAM child it waits for: CPU summed,
// RSS the larger), each executed directly in a node namespace of its own with a realistic config (a
// chained plugin with a veth pod's prevResult; dhcp against its own suite's daemon and dnsmasq), and
// each plugin binary's size. netloom and the reference alternate run by run. A plugin whose link kind
// this kernel lacks (ipvlan, vlan, dummy, vrf here) is measured in the VM lane (make bench runs it
// first) and its VM figures are folded in, labelled "(VM)"; without them the report says it did not run.
// Goal 4: each plugin's larger of the ADD and DEL peak RSS p50 ratios, at most 1.
func BenchmarkPluginCost(b *testing.B) {
	harness.RequireRoot(b)
	timeBin := gnuTime()
	if timeBin == "" {
		b.Fatalf("no GNU time (/usr/bin/time, Debian package \"time\", make deps): peak RSS cannot be measured")
	}
	inVM := harness.InVM()
	runs := costRuns
	if inVM {
		runs = costVMRuns
	}
	results.param("costRuns", strconv.Itoa(runs))
	bins := newCostBins(b)
	for _, subj := range costSubjects() {
		b.Run(subj.plugin, func(b *testing.B) {
			scenario := subj.scenario(inVM)
			for _, s := range costSuites {
				bin := filepath.Join(bins.pluginDir(b, s, subj.plugin), subj.plugin)
				fi, err := os.Stat(bin)
				if err != nil {
					b.Fatalf("%s %s: %v", s, subj.plugin, err)
				}
				results.record(scenario, "binary size", "KiB", s, float64(fi.Size())/1024, false)
				results.record(scenario, "loaded image", "KiB", s, float64(loadedImage(b, bin))/1024, false)
			}
			if !kernelHas(b, subj.kernel) {
				if inVM {
					b.Fatalf("the VM's kernel lacks %s links", subj.kernel.kind)
				}
				costFoldVM(b, subj)
				return
			}
			costMeasure(b, bins, subj, scenario, runs, timeBin)
		})
	}
}

// costBins stages the binaries BenchmarkPluginCost runs: a fresh copy of each suite's build, one
// directory per suite, so that every page of every binary measured was just written and sits in the
// page cache. Peak RSS follows the page cache: the kernel maps a faulting page together with the cached
// pages around it (fault-around, 64 KiB), so a binary whose pages were partly evicted since it was built
// shows a smaller RSS than the same binary fully cached. Measured on static DEL in place, the reference
// (built long before) 3144 KiB against netloom's (just built) 3196; both freshly copied, 3284 against
// 3196. Copies put both suites in the same state: the state of a binary just installed on a node.
type costBins struct {
	dir    string
	staged map[string]bool // suite/plugin already copied
}

func newCostBins(b *testing.B) *costBins {
	return &costBins{dir: b.TempDir(), staged: map[string]bool{}}
}

// pluginDir is the directory holding the staged copy of suite's build of plugin.
func (c *costBins) pluginDir(b *testing.B, suite, plugin string) string {
	dir := filepath.Join(c.dir, suite)
	if c.staged[suite+"/"+plugin] {
		return dir
	}
	src := harness.PluginDir(b)
	if suite == suiteReference {
		src = harness.ReferencePlugin(b, plugin)
	}
	data, err := os.ReadFile(filepath.Join(src, plugin))
	if err != nil {
		b.Fatalf("staging %s %s: %v", suite, plugin, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, plugin), data, 0o755); err != nil {
		b.Fatalf("staging %s %s: %v", suite, plugin, err)
	}
	c.staged[suite+"/"+plugin] = true
	return dir
}

// loadedImage is the size of what the kernel maps from bin when it runs: its allocated ELF sections
// (code, read-only data, the pc tables, data). With the binary in the page cache, nearly all of it is
// resident in a plugin process by the time it exits, so it is most of the peak RSS; the file size also
// counts symbols and debug information, which the reference's builds keep and netloom's strip.
func loadedImage(b *testing.B, bin string) uint64 {
	f, err := elf.Open(bin)
	if err != nil {
		b.Fatalf("reading %s: %v", bin, err)
	}
	defer f.Close()
	var n uint64
	for _, sec := range f.Sections {
		if sec.Flags&elf.SHF_ALLOC != 0 && sec.Type != elf.SHT_NOBITS {
			n += sec.Size
		}
	}
	return n
}

// costFoldVM records the VM lane's figures of subj, or says in the report why there are none.
func costFoldVM(b *testing.B, subj costSubject) {
	rows, goals, why := costVMResults(b)
	vmScenario, vmMetric := subj.scenario(true), subj.goalMetric(true)
	found := false
	for _, row := range rows {
		if row.Scenario != vmScenario || row.Metric == "binary size" || row.Metric == "loaded image" {
			continue
		}
		for s, v := range map[string]*float64{suiteNetloom: row.Netloom, suiteReference: row.Reference} {
			if v != nil {
				results.record(row.Scenario, row.Metric, row.Unit, s, *v, row.HigherIsBetter)
			}
		}
		found = true
	}
	for _, g := range goals {
		if g.Metric == vmMetric {
			results.goal(g)
		}
	}
	if !found {
		if why == "" {
			why = "this kernel lacks it and the VM-lane report has no " + vmScenario + " rows"
		}
		results.notRun(subj.scenario(false), why)
		b.Logf("%s: not measured: %s", subj.plugin, why)
	}
}

// costMeasure runs subj's ADD and DEL runs times per suite, alternating, and records the figures.
func costMeasure(b *testing.B, bins *costBins, subj costSubject, scenario string, runs int, timeBin string) {
	f := &costFixture{bins: bins, node: harness.NewNetNS(b, "cst"), pod: harness.NewNetNS(b, "csp"), dataDir: map[string]string{}}
	f.node.Run(b, "ip", "link", "set", "lo", "up")
	f.pod.Run(b, "ip", "link", "set", "lo", "up")
	for _, s := range costSuites {
		f.dataDir[s] = b.TempDir()
	}
	if subj.setup != nil {
		subj.setup(b, f)
	}
	prepare := func() error {
		if subj.prepare == nil {
			return nil
		}
		return subj.prepare(f)
	}
	type runCost struct {
		cpu          time.Duration
		addRSS, dRSS int64
	}
	costs := map[string][]runCost{}
	for run := range runs {
		for _, s := range costSuites {
			bin := filepath.Join(bins.pluginDir(b, s, subj.plugin), subj.plugin)
			stdin := costStdin(subj, f, s)
			env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": fmt.Sprintf("cost-%d", run),
				"CNI_NETNS": f.pod.Path, "CNI_IFNAME": "eth0", "CNI_PATH": bins.pluginDir(b, s, "host-local")}
			err := f.node.Do(func() error {
				var c runCost
				// First pass: CPU from the rusage of a plain exec (a real fork under time adds its own).
				if err := prepare(); err != nil {
					return err
				}
				out, cpu, err := execWithRusage(bin, env, stdin)
				if err != nil {
					return fmt.Errorf("%w: %s", err, out)
				}
				c.cpu = cpu
				if err := delPlugin(bin, env, stdin); err != nil {
					return err
				}
				// Second pass: peak RSS of ADD and of DEL under GNU time.
				if err := prepare(); err != nil {
					return err
				}
				if out, c.addRSS, err = peakRSS(timeBin, bin, env, stdin); err != nil {
					return fmt.Errorf("%w: %s", err, out)
				}
				env["CNI_COMMAND"] = "DEL"
				defer func() { env["CNI_COMMAND"] = "ADD" }()
				if out, c.dRSS, err = peakRSS(timeBin, bin, env, stdin); err != nil {
					return fmt.Errorf("%w: %s", err, out)
				}
				costs[s] = append(costs[s], c)
				return nil
			})
			if err != nil {
				b.Fatalf("%s %s run %d: %v", s, subj.plugin, run, err)
			}
		}
	}
	p50 := map[string][3]float64{} // CPU ms, ADD RSS KiB, DEL RSS KiB
	for _, s := range costSuites {
		var cpu []time.Duration
		var add, del []int64
		for _, c := range costs[s] {
			cpu, add, del = append(cpu, c.cpu), append(add, c.addRSS), append(del, c.dRSS)
		}
		slices.Sort(add)
		slices.Sort(del)
		v := [3]float64{ms(percentile(cpu, 50)), float64(add[len(add)/2]), float64(del[len(del)/2])}
		p50[s] = v
		results.record(scenario, "ADD CPU p50", "ms", s, v[0], false)
		results.record(scenario, "ADD peak RSS p50", "KiB", s, v[1], false)
		results.record(scenario, "DEL peak RSS p50", "KiB", s, v[2], false)
		b.ReportMetric(v[0], s+"-cpu-ms")
		b.ReportMetric(v[1], s+"-add-maxrss-KiB")
	}
	n, r := p50[suiteNetloom], p50[suiteReference]
	addRatio, delRatio := n[1]/r[1], n[2]/r[2]
	results.goal(goalEntry{Goal: "4 memory", Metric: subj.goalMetric(harness.InVM()),
		Value: max(addRatio, delRatio), Target: 1.0, AtMost: true,
		Basis: fmt.Sprintf("larger of ADD %.0f/%.0f KiB (%.2f) and DEL %.0f/%.0f KiB (%.2f), %d runs each, interleaved",
			n[1], r[1], addRatio, n[2], r[2], delRatio, runs)})
}

// delPlugin runs DEL of what an ADD with env and stdin made.
func delPlugin(bin string, env map[string]string, stdin []byte) error {
	env["CNI_COMMAND"] = "DEL"
	defer func() { env["CNI_COMMAND"] = "ADD" }()
	if out, _, err := runCNI([]string{bin}, env, stdin); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// gnuTime is the path of GNU time, which reports a child's peak RSS, or "" when it is not installed.
func gnuTime() string {
	for _, p := range []string{"/usr/bin/time", "/bin/time"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// BenchmarkPluginCost measures every plugin both suites have, each once, and every config is JSON.
func TestCostSubjectsCoverBothSuites(t *testing.T) {
	var got []string
	f := &costFixture{dataDir: map[string]string{}, dhcpSock: map[string]string{}}
	for _, subj := range costSubjects() {
		got = append(got, subj.plugin)
		var m map[string]any
		if err := json.Unmarshal(costStdin(subj, f, suiteNetloom), &m); err != nil {
			t.Errorf("%s: %v", subj.plugin, err)
		}
	}
	slices.Sort(got)
	if want := harness.ReferencePluginNames(); !slices.Equal(got, want) {
		t.Errorf("measured plugins %v, want every reference plugin %v", got, want)
	}
}

// A scenario the run could not measure is printed with its reason, once.
func TestReportNotRun(t *testing.T) {
	r := newBenchReport()
	r.notRun("vrf process", "no VM figures")
	r.notRun("vrf process", "no VM figures")
	var out strings.Builder
	r.print(&out)
	if n := strings.Count(out.String(), "vrf process: NOT RUN: no VM figures"); n != 1 {
		t.Errorf("not-run line %d times in:\n%s", n, out.String())
	}
}
