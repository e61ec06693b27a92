// The comparison report: BenchmarkChurn (pod churn latency percentiles and concurrent throughput, with
// a leftovers check, for the conflists of churnScenarios: bridge with and without portmap, macvlan,
// kind's ptp+host-local+portmap, podman's bridge+host-local+portmap+firewall+tuning and
// bridge+host-local+portmap+bandwidth; each chain's ADD+DEL p50 ratio is judged against the 0.7
// target, and a chain whose netloom plugin is not in the plugin directory yet is reported "not built"
// instead of run), BenchmarkHostLocalLeases (host-local with 0 and 10,000 existing leases) and
// BenchmarkPluginCost (CPU time and peak RSS of one plugin process, binary sizes). Each measures
// netloom and the reference plugins v1.9.1 in the same run, interleaved, with identical configs except
// for the plugin directories; TestMain (report_test.go) then prints one table of what ran. Run as root,
// with netloom's binaries built as `make build` and the reference are (static, -trimpath: a cgo build
// is dynamically linked and measurably slower to start, which would skew every number):
//
//	CGO_ENABLED=0 go build -trimpath -o /tmp/nlbin/ ./plugins/... ./cmd/...
//	NETLOOM_BIN=/tmp/nlbin go test ./test/bench -run '^$' -bench 'Churn|HostLocalLeases|PluginCost' -benchtime 1x -timeout 60m
//
// Environment:
//
//	NETLOOM_BENCH_PODS       pods in the sequential churn (default 50)
//	NETLOOM_BENCH_CONC_PODS  pods in each concurrent churn, at 8 and at 32 workers (default 64; the
//	                         ptp, podman and bandwidth chains run at 32 workers only)
//	NETLOOM_BENCH_ROUNDS     netloom/reference alternations per churn scenario (default 2)
//	NETLOOM_BENCH_JSON       also write the table, with machine facts, as JSON to this file
//
// Peak RSS needs GNU time (/usr/bin/time, Debian package "time"); without it those rows are left out.
// With the defaults the three benchmarks took about 3 minutes on 2 idle cores with the first three
// scenarios. On 2 cores shared with other work (load average ~28), with the ptp chain and without the
// two chains not built yet, they took 16 minutes (the ptp chain 2.2 of them) and all of `make bench`
// 22.5. One chain alone: -bench 'Churn/ptp'.
//
// Every scenario runs in a "node" network namespace of its own (the plugins are executed from a thread
// inside it), so the node's own links and firewall are never touched and what a suite leaves behind
// can be checked there. Ratios are netloom/reference (reference/netloom for pods/s): below 1 means
// netloom is faster or smaller.

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"

	"github.com/netloom/netloom/test/harness"
)

// Churn addressing and names. The network name and the container ID prefix are what the leftovers
// check looks for in the node's rules.
const (
	churnNetwork       = "nlchurn"
	churnSubnet        = "10.214.0.0/16"
	churnIDPrefix      = "churn-r"
	churnPodPort       = 80
	churnFirstHostPort = 30000
	churnIfName        = "eth0"
)

// churnScenario is one conflist shape the churn runs.
type churnScenario struct {
	name         string
	main         string           // the interface plugin, with host-local: "bridge", "macvlan" (on a veth in the node namespace) or "ptp"
	podmanBridge bool             // bridge as podman sets it: isGateway and a default route from IPAM, instead of isDefaultGateway
	portmap      bool             // chain portmap, with a unique hostPort per pod
	after        []map[string]any // plugins chained after portmap, as they appear in the conflist
	workers      []int            // concurrency levels; nil: churnConfig's (8 and 32)
}

// plugins lists the plugin binaries the scenario's conflist runs.
func (sc churnScenario) plugins() []string {
	out := []string{sc.main, "host-local"}
	if sc.portmap {
		out = append(out, "portmap")
	}
	for _, p := range sc.after {
		out = append(out, p["type"].(string))
	}
	return out
}

// churnScenarios are the conflists compared: the bridge pod network with and without portmap, macvlan,
// and the chains of three well-known deployments, compared at 32 concurrent workers only to keep the
// run short.
func churnScenarios() []churnScenario {
	return []churnScenario{
		{name: "bridge+host-local+portmap", main: "bridge", portmap: true},
		{name: "bridge+host-local", main: "bridge"},
		{name: "macvlan+host-local", main: "macvlan"},
		// kind's default network (kindnet's conflist): ptp without masquerading, then portmap.
		{name: "ptp+host-local+portmap", main: "ptp", portmap: true, workers: []int{32}},
		// podman's 87-podman-bridge.conflist.
		{name: "bridge+host-local+portmap+firewall+tuning", main: "bridge", podmanBridge: true, portmap: true,
			after: []map[string]any{{"type": "firewall"}, {"type": "tuning"}}, workers: []int{32}},
		// Traffic shaping with rates in the config: a tbf on the host veth, an ifb for the pod's egress.
		{name: "bridge+host-local+portmap+bandwidth", main: "bridge", portmap: true,
			after: []map[string]any{{"type": "bandwidth", "ingressRate": 100_000_000, "ingressBurst": 1_000_000,
				"egressRate": 100_000_000, "egressBurst": 1_000_000}}, workers: []int{32}},
	}
}

// churnConflist is the scenario's conflist, the same for both suites: only the runtime's plugin
// directories differ. portmap and firewall set no backend, so each suite runs its default (netloom
// portmap: nftables, the reference: iptables).
func churnConflist(sc churnScenario, bridge, master, dataDir string) []byte {
	ipam := map[string]any{"type": "host-local", "dataDir": dataDir,
		"ranges": [][]map[string]string{{{"subnet": churnSubnet}}}}
	defaultRoute := []map[string]string{{"dst": "0.0.0.0/0"}}
	var plugins []any
	switch {
	case sc.main == "macvlan":
		plugins = append(plugins, map[string]any{"type": "macvlan", "master": master, "mode": "bridge", "ipam": ipam})
	case sc.main == "ptp":
		ipam["routes"] = defaultRoute
		plugins = append(plugins, map[string]any{"type": "ptp", "ipMasq": false, "mtu": 1500, "ipam": ipam})
	case sc.podmanBridge:
		ipam["routes"] = defaultRoute
		plugins = append(plugins, map[string]any{"type": "bridge", "bridge": bridge, "isGateway": true,
			"ipMasq": true, "hairpinMode": true, "ipam": ipam})
	default:
		plugins = append(plugins, map[string]any{"type": "bridge", "bridge": bridge, "isDefaultGateway": true,
			"ipMasq": true, "hairpinMode": true, "ipam": ipam})
	}
	if sc.portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
	}
	for _, p := range sc.after {
		plugins = append(plugins, p)
	}
	out, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": churnNetwork, "plugins": plugins})
	return out
}

// missingPlugins lists the plugins of names that dir, netloom's plugin directory, does not hold: a
// chain whose plugin is not written yet (or not built) is reported as not built instead of run.
func missingPlugins(dir string, names []string) []string {
	var out []string
	for _, n := range names {
		if st, err := os.Stat(filepath.Join(dir, n)); err != nil || st.IsDir() {
			out = append(out, n)
		}
	}
	return out
}

// benchSuite is netloom or the reference: how to drive it through libcni.
type benchSuite struct {
	name    string
	runtime func(b *testing.B) *harness.Runtime
}

// benchSuites are netloom and the reference, the latter with the reference builds of plugins.
func benchSuites(plugins ...string) []benchSuite {
	return []benchSuite{
		{suiteNetloom, func(b *testing.B) *harness.Runtime { return harness.NewRuntime(b) }},
		{suiteReference, func(b *testing.B) *harness.Runtime {
			dirs := make([]string, len(plugins))
			for i, p := range plugins {
				dirs[i] = harness.ReferencePlugin(b, p)
			}
			return harness.NewRuntimeWithPath(b, dirs...)
		}},
	}
}

// churnConfig is the size of a churn run.
type churnConfig struct {
	pods     int   // sequential pods
	concPods int   // pods per concurrent phase
	rounds   int   // alternations netloom, reference
	workers  []int // concurrency levels
}

func loadChurnConfig(b *testing.B) churnConfig {
	cfg := churnConfig{
		pods:     envInt(b, "NETLOOM_BENCH_PODS", 50),
		concPods: envInt(b, "NETLOOM_BENCH_CONC_PODS", 64),
		rounds:   envInt(b, "NETLOOM_BENCH_ROUNDS", 2),
		workers:  []int{8, 32},
	}
	results.param("pods", strconv.Itoa(cfg.pods))
	results.param("concPods", strconv.Itoa(cfg.concPods))
	results.param("rounds", strconv.Itoa(cfg.rounds))
	results.param("netloomBin", harness.PluginDir(b))
	results.param("referenceBuild", "reference v1.9.1, go install -trimpath with CGO_ENABLED=0")
	return cfg
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// concStats is one concurrency level's totals over all rounds.
type concStats struct {
	pods             int
	addWall, delWall time.Duration
	addFail, delFail int
	dupIPs           int
}

// churnStats is one suite's samples for one scenario over all rounds.
type churnStats struct {
	add, del, both []time.Duration
	seqFail        int
	conc           map[int]*concStats
}

// BenchmarkChurn measures, per conflist scenario, pods added and deleted one after the other
// (percentiles of ADD, DEL and ADD+DEL per pod) and by 8 and 32 concurrent workers (pods/s, failures,
// duplicate IPs), for netloom and the reference alternately, and fails a scenario whose suite leaves
// links, leases or rules of its pods behind.
func BenchmarkChurn(b *testing.B) {
	harness.RequireRoot(b)
	cfg := loadChurnConfig(b)
	for _, sc := range churnScenarios() {
		b.Run(sc.name, func(b *testing.B) {
			if missing := missingPlugins(harness.PluginDir(b), sc.plugins()); len(missing) > 0 {
				results.notBuilt(sc.name, missing)
				b.Skipf("%s: not built: netloom %s not in %s", sc.name, strings.Join(missing, ", "), harness.PluginDir(b))
			}
			suites := benchSuites(sc.plugins()...)
			runtimes := map[string]*harness.Runtime{}
			stats := map[string]*churnStats{}
			for _, s := range suites {
				runtimes[s.name] = s.runtime(b)
				stats[s.name] = &churnStats{conc: map[int]*concStats{}}
			}
			for round := range cfg.rounds {
				for _, s := range suites {
					churnRun(b, sc, s.name, runtimes[s.name], cfg, round, stats[s.name])
				}
			}
			for _, s := range suites {
				stats[s.name].record(b, sc.name, s.name, sc.workersOr(cfg.workers))
			}
			concurrencyGoal(sc.name, stats)
		})
	}
}

// attachment is one pod's CNI identity in a churn phase.
type attachment struct {
	id      string
	netns   string
	capArgs map[string]any
}

// churnRun is one suite's run of one scenario in a fresh node namespace: the sequential phase, each
// concurrency level, then the leftovers check.
func churnRun(b *testing.B, sc churnScenario, suite string, rt *harness.Runtime, cfg churnConfig, round int, st *churnStats) {
	b.Helper()
	node := harness.NewNetNS(b, "chn")
	node.Run(b, "ip", "link", "set", "lo", "up")
	bridge := harness.Unique("nlcb")
	infra := map[string]bool{"lo": true, bridge: true}
	var master string
	if sc.main == "macvlan" {
		master = harness.Unique("nlcm")
		peer := harness.Unique("nlcp")
		node.Run(b, "ip", "link", "add", master, "type", "veth", "peer", "name", peer)
		node.Run(b, "ip", "link", "set", master, "up")
		node.Run(b, "ip", "link", "set", peer, "up")
		infra[master], infra[peer] = true, true
	}
	dataDir := b.TempDir()
	list := churnConflist(sc, bridge, master, dataDir)
	pods := make([]harness.NetNS, max(cfg.pods, cfg.concPods))
	for i := range pods {
		pods[i] = harness.NewNetNS(b, "chp")
	}
	defer func() {
		for _, p := range pods {
			p.Delete(b)
		}
		node.Delete(b)
	}()
	port := churnFirstHostPort
	nextCapArgs := func() map[string]any {
		if !sc.portmap {
			return nil
		}
		port++
		return map[string]any{"portMappings": []map[string]any{
			{"hostPort": port, "containerPort": churnPodPort, "protocol": "tcp"}}}
	}
	podIPs := map[string]bool{}
	label := fmt.Sprintf("%s/%s round %d", sc.name, suite, round)

	// Sequential: ADD each pod, then DEL each, timing every call.
	seq := make([]attachment, cfg.pods)
	for i := range seq {
		seq[i] = attachment{fmt.Sprintf("%s%d-s%d", churnIDPrefix, round, i), pods[i].Path, nextCapArgs()}
	}
	adds := make([]time.Duration, len(seq))
	added := make([]bool, len(seq))
	err := node.Do(func() error {
		for i, a := range seq {
			t0 := time.Now()
			res, err := rt.Add(b, list, a.id, a.netns, churnIfName, a.capArgs)
			adds[i] = time.Since(t0)
			if err != nil {
				st.seqFail++
				b.Errorf("%s: sequential ADD %s: %v", label, a.id, err)
				continue
			}
			added[i] = true
			for _, ip := range resultIPs(res) {
				podIPs[ip] = true
			}
		}
		for i, a := range seq {
			t0 := time.Now()
			err := rt.Del(b, list, a.id, a.netns, churnIfName, a.capArgs)
			d := time.Since(t0)
			if err != nil {
				st.seqFail++
				b.Errorf("%s: sequential DEL %s: %v", label, a.id, err)
				continue
			}
			if added[i] {
				st.add = append(st.add, adds[i])
				st.del = append(st.del, d)
				st.both = append(st.both, adds[i]+d)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("%s: enter node namespace: %v", label, err)
	}
	afterSeq := ruleDump(node)

	// Concurrent: M pods ADDed by W workers, then DELed by W workers.
	for _, w := range sc.workersOr(cfg.workers) {
		cs := st.conc[w]
		if cs == nil {
			cs = &concStats{}
			st.conc[w] = cs
		}
		atts := make([]attachment, cfg.concPods)
		for i := range atts {
			atts[i] = attachment{fmt.Sprintf("%s%d-c%d-%d", churnIDPrefix, round, w, i), pods[i].Path, nextCapArgs()}
		}
		ips := make([][]string, len(atts))
		wall, errs := inParallel(node, w, len(atts), func(i int) error {
			res, err := rt.Add(b, list, atts[i].id, atts[i].netns, churnIfName, atts[i].capArgs)
			if err == nil {
				ips[i] = resultIPs(res)
			}
			return err
		})
		cs.pods += len(atts)
		cs.addWall += wall
		seen := map[string]bool{}
		for i, err := range errs {
			if err != nil {
				cs.addFail++
				b.Logf("%s: %d workers: ADD %s: %v", label, w, atts[i].id, err)
				continue
			}
			for _, ip := range ips[i] {
				if seen[ip] {
					cs.dupIPs++
					b.Errorf("%s: %d workers: %s got %s, which another pod holds", label, w, atts[i].id, ip)
				}
				seen[ip], podIPs[ip] = true, true
			}
		}
		wall, errs = inParallel(node, w, len(atts), func(i int) error {
			return rt.Del(b, list, atts[i].id, atts[i].netns, churnIfName, atts[i].capArgs)
		})
		cs.delWall += wall
		for i, err := range errs {
			if err != nil {
				cs.delFail++
				b.Errorf("%s: %d workers: DEL %s: %v", label, w, atts[i].id, err)
			}
		}
	}

	items := churnLeftovers(b, node, pods, infra, dataDir, podIPs)
	// Rules a suite keeps by design (its static chains and their jumps) are there after the first
	// pod; anything that appeared since the sequential phase grew with the number of pods churned.
	for _, line := range ruleDump(node) {
		if !slices.Contains(afterSeq, line) {
			items = append(items, "rule appeared during the concurrent churn: "+line)
		}
	}
	results.leftover(sc.name, suite, round, items)
	if len(items) > 0 {
		b.Errorf("%s left behind:\n  %s", label, strings.Join(items, "\n  "))
	}
}

// inParallel runs op(0..n-1) on workers goroutines, each with its thread in node (libcni executes the
// plugins from the calling thread, so they run in node), and returns the wall time and each op's error.
func inParallel(node harness.NetNS, workers, n int, op func(i int) error) (time.Duration, []error) {
	errs := make([]error, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			err := node.Do(func() error {
				for i := range jobs {
					errs[i] = op(i)
				}
				return nil
			})
			if err != nil {
				for i := range jobs {
					errs[i] = fmt.Errorf("enter node namespace: %w", err)
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return time.Since(start), errs
}

// resultIPs lists the addresses (without prefix length) in an ADD result.
func resultIPs(res types.Result) []string {
	if res == nil {
		return nil
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil
	}
	var out []string
	for _, ip := range r.IPs {
		out = append(out, ip.Address.IP.String())
	}
	return out
}

// ruleDumps are the commands that show the node's rules to the leftovers check; with iptables-nft the
// iptables rules show up in the nft ruleset too.
func ruleDumps() [][]string {
	return [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}}
}

// ruleCounters matches the packet and byte counters iptables-save ("[3:180]") and nft ("packets 3
// bytes 180") print, which change with traffic, not with rules.
var ruleCounters = regexp.MustCompile(`\[\d+:\d+\]|packets \d+ bytes \d+`)

// ruleDump is every line of the node's rule dumps, each prefixed with its command, without comments
// and counters so two dumps compare equal when the rules are the same.
func ruleDump(node harness.NetNS) []string {
	var out []string
	for _, cmd := range ruleDumps() {
		text, err := node.Exec(cmd...)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", cmd[0], err))
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(ruleCounters.ReplaceAllString(line, ""))
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			out = append(out, cmd[0]+": "+line)
		}
	}
	return out
}

// churnLeftovers lists what the pods left: links in the node namespace besides infra, links in the
// pods' namespaces besides lo, lease files, and rules naming the network, a container ID, a pod's
// address or a per-pod portmap chain (CNI-DN-*). What a suite keeps by design once it has run names
// none of these and is allowed: the reference portmap's CNI-HOSTPORT-DNAT/-MASQ/-SETMARK chains with
// their static rules and the jumps to them from PREROUTING, OUTPUT and POSTROUTING; netloom portmap's
// table inet netloom_portmap with its static chains and empty maps; for both, the (then empty) nat
// table and POSTROUTING chain iptables-nft made for ipMasq. The bridge stays too, as the node's.
func churnLeftovers(b *testing.B, node harness.NetNS, pods []harness.NetNS, infra map[string]bool, dataDir string, podIPs map[string]bool) []string {
	b.Helper()
	var items []string
	links := func(ns harness.NetNS, allowed func(string) bool, where string) {
		err := ns.Do(func() error {
			ls, err := netlinksafe.LinkList()
			if err != nil {
				return err
			}
			for _, l := range ls {
				if !allowed(l.Attrs().Name) {
					items = append(items, fmt.Sprintf("%s: link %s (%s)", where, l.Attrs().Name, l.Type()))
				}
			}
			return nil
		})
		if err != nil {
			items = append(items, fmt.Sprintf("%s: list links: %v", where, err))
		}
	}
	links(node, func(name string) bool { return infra[name] }, "node")
	for _, p := range pods {
		links(p, func(name string) bool { return name == "lo" }, "pod "+p.Name)
	}
	for _, lease := range harness.Leases(b, dataDir, churnNetwork) {
		items = append(items, "lease file "+lease)
	}
	for _, line := range ruleDump(node) {
		if ruleNamesPod(line, podIPs) {
			items = append(items, "rule "+line)
		}
	}
	return items
}

// ipToken splits a rule line into the candidate addresses in it.
var ipToken = regexp.MustCompile(`\d+(?:\.\d+){3}|[0-9a-fA-F]*:[0-9a-fA-F:]+`)

func ruleNamesPod(line string, podIPs map[string]bool) bool {
	if strings.Contains(line, churnNetwork) || strings.Contains(line, churnIDPrefix) || strings.Contains(line, "CNI-DN-") {
		return true
	}
	for _, tok := range ipToken.FindAllString(line, -1) {
		if podIPs[tok] {
			return true
		}
	}
	return false
}

// percentile is the nearest-rank percentile p (0..100) of samples.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// workersOr is the scenario's concurrency levels, or def.
func (sc churnScenario) workersOr(def []int) []int {
	if sc.workers != nil {
		return sc.workers
	}
	return def
}

// record hands one suite's churn numbers to the report and to the benchmark's output.
func (st *churnStats) record(b *testing.B, scenario, suite string, workers []int) {
	for _, m := range []struct {
		name    string
		samples []time.Duration
	}{{"seq ADD", st.add}, {"seq DEL", st.del}, {"seq ADD+DEL", st.both}} {
		for _, p := range []struct {
			name string
			p    float64
		}{{"p50", 50}, {"p90", 90}, {"p99", 99}, {"max", 100}} {
			results.record(scenario, m.name+" "+p.name, "ms", suite, ms(percentile(m.samples, p.p)), false)
		}
	}
	results.target(scenario, "seq ADD+DEL p50", ratioTarget)
	results.record(scenario, "seq failures", unitCount, suite, float64(st.seqFail), false)
	b.ReportMetric(ms(percentile(st.both, 50)), suite+"-add+del-p50-ms")
	for _, w := range workers {
		cs := st.conc[w]
		if cs == nil || cs.pods == 0 {
			continue
		}
		prefix := fmt.Sprintf("c%d ", w)
		addRate := float64(cs.pods) / cs.addWall.Seconds()
		results.record(scenario, prefix+"ADD", "pods/s", suite, addRate, true)
		results.record(scenario, prefix+"DEL", "pods/s", suite, float64(cs.pods)/cs.delWall.Seconds(), true)
		results.record(scenario, prefix+"ADD failures", unitCount, suite, float64(cs.addFail), false)
		results.record(scenario, prefix+"DEL failures", unitCount, suite, float64(cs.delFail), false)
		results.record(scenario, prefix+"duplicate IPs", unitCount, suite, float64(cs.dupIPs), false)
		b.ReportMetric(addRate, fmt.Sprintf("%s-c%d-add-pods/s", suite, w))
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {0, 1}} {
		if got := percentile(s, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}

func TestRuleNamesPod(t *testing.T) {
	ips := map[string]bool{"10.214.0.5": true}
	for _, c := range []struct {
		line string
		want bool
	}{
		{`iptables-save: -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"nlchurn\" id: \"x\"" -j CNI-DN-1`, true},
		{"iptables-save: :CNI-DN-59b9ad2845fdb18228d68 -", true},
		{"nft: tcp dport 30001 dnat to 10.214.0.5:80", true},
		{"iptables-save: -A POSTROUTING -s 10.214.0.5/32 -j CNI-abc", true},
		{"nft: tcp dport 30001 dnat to 10.214.0.50:80", false},
		{"iptables-save: -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT", false},
		{`nft: meta nfproto ipv4 fib daddr type local jump hostports comment "to local ipv4 addresses"`, false},
	} {
		if got := ruleNamesPod(c.line, ips); got != c.want {
			t.Errorf("ruleNamesPod(%q) = %v, want %v", c.line, got, c.want)
		}
	}
}
