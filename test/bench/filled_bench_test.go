// BenchmarkFilledNode measures issue 15's goal 1, the whole chain's half: does a pod's ADD+DEL cost the
// same on a node that already runs 1,000 pods as on an empty one? The chain is BenchmarkChurn's
// bridge+host-local+portmap (bridge with ipMasq, portmap through the portMappings capability with its
// default backend, each pod one hostPort), run once per masquerade backend ("ipMasqBackend": "iptables"
// and "nftables"), for netloom and the reference v1.9.1. Per suite and backend it makes two node
// namespaces: an empty one, and a full one that real ADDs of the same chain fill with the pods (each in
// its own network namespace, with its hostPort; the fill is not timed). Then it alternates, empty, full,
// empty, full..., pod by pod, timing each pod's ADD and DEL on top, and reports the ADD+DEL
// p50 on each node and their ratio, full/empty, against the 1.1 target (a goal row per backend for
// netloom; the reference's ratio is what users get today). First it does the same for the floor
// (BenchmarkFloor's kernel work in-process, on nodes it fills itself), whose growth from empty to full
// is the kernel's own and goes into the goal rows' basis. Run as root:
//
//	NETLOOM_BIN=$PWD/bin go test ./test/bench -run '^$' -bench FilledNode -benchtime 1x -timeout 150m
//
// Environment (and BenchmarkChurn's NETLOOM_BENCH_JSON):
//
//	NETLOOM_BENCH_FILL           pods already on the full node (default 1000; 200 for a quick run)
//	NETLOOM_BENCH_FILL_PODS      pods timed per node per round (default 20)
//	NETLOOM_BENCH_FILL_ROUNDS    rounds of NETLOOM_BENCH_FILL_PODS pods (default 3)
//	NETLOOM_BENCH_FILL_WORKERS   concurrent ADDs filling a node (default 4)
//	NETLOOM_BENCH_FILL_SUITES    "netloom" or "reference" to run only that suite (the goal rows need
//	                             netloom; make bench fills netloom only, see its FILL_SUITES); default both
//	NETLOOM_BENCH_FILL_IPTABLES  "legacy" or "nft": run that build of the iptables tools (for both
//	                             suites, through a PATH directory of links to iptables-legacy* or
//	                             iptables-nft*) instead of the system's; empty: the system's
//
// With the defaults on 2 cores shared with other work, netloom took about 4 minutes per backend (2.5 of
// them filling its node); the reference took 26.5 minutes to fill its node with the iptables backend
// alone (its ADD reads the whole nat table, several times), so the whole benchmark takes over an hour:
// NETLOOM_BENCH_FILL_SUITES=netloom for a quick look at netloom. The nodes' namespaces go at the end of each suite's run (the pods' links, rules
// and nft tables with them) and the pods' namespaces with them, also when the benchmark fails.
package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	masqnft "github.com/netloom/netloom/pkg/firewall/nftables"
	"github.com/netloom/netloom/test/harness"
)

// Host ports: the fill's pods take fillFirstHostPort and up, the timed pods fillTimedHostPort and up.
const (
	fillFirstHostPort = 20000
	fillTimedHostPort = 40000
	fillIDPrefix      = "fill-"
)

// fillConfig is the size of a filled-node run.
type fillConfig struct {
	fill     int    // pods on the full node
	pods     int    // timed pods per node per round
	rounds   int    // rounds of pods timed
	workers  int    // concurrent ADDs while filling
	iptables string // "", "legacy" or "nft"
	only     string // "": both suites; else the one to run
}

func loadFillConfig(b *testing.B) fillConfig {
	cfg := fillConfig{
		fill:     envInt(b, "NETLOOM_BENCH_FILL", 1000),
		pods:     envInt(b, "NETLOOM_BENCH_FILL_PODS", 20),
		rounds:   envInt(b, "NETLOOM_BENCH_FILL_ROUNDS", 3),
		workers:  envInt(b, "NETLOOM_BENCH_FILL_WORKERS", 4),
		iptables: os.Getenv("NETLOOM_BENCH_FILL_IPTABLES"),
		only:     os.Getenv("NETLOOM_BENCH_FILL_SUITES"),
	}
	switch cfg.only {
	case "", suiteNetloom, suiteReference:
	default:
		b.Fatalf("NETLOOM_BENCH_FILL_SUITES=%q: want %s, %s or nothing", cfg.only, suiteNetloom, suiteReference)
	}
	switch cfg.iptables {
	case "", "legacy", "nft":
	default:
		b.Fatalf("NETLOOM_BENCH_FILL_IPTABLES=%q: want legacy, nft or nothing", cfg.iptables)
	}
	results.param("fill", strconv.Itoa(cfg.fill))
	results.param("fillPods", strconv.Itoa(cfg.pods))
	results.param("fillRounds", strconv.Itoa(cfg.rounds))
	results.param("fillIPTables", cfg.iptables)
	results.param("netloomBin", harness.PluginDir(b))
	return cfg
}

// fillScenario is the chain, BenchmarkChurn's first.
var fillScenario = churnScenario{name: "bridge+host-local+portmap", main: "bridge", portmap: true}

// fillConflist is churnConflist's bridge+host-local+portmap with the bridge's ipMasqBackend set.
func fillConflist(b *testing.B, backend, bridge, dataDir string) []byte {
	var list map[string]any
	if err := json.Unmarshal(churnConflist(fillScenario, bridge, "", dataDir), &list); err != nil {
		b.Fatal(err)
	}
	list["plugins"].([]any)[0].(map[string]any)["ipMasqBackend"] = backend
	out, err := json.Marshal(list)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// fillNode is one node namespace of the run, empty or full, with the timed pods' namespaces: the chain
// through libcni, or the floor.
type fillNode struct {
	label string
	node  harness.NetNS
	ops   podOps
	floor bool
	pods  []harness.NetNS // the timed pods' namespaces, reused every round
	fill  []harness.NetNS // the fill's pods' namespaces
	both  []time.Duration // ADD+DEL of every timed pod
	fails int
	next  int // the next timed pod's number
}

// delete removes the node's and the pods' namespaces and with them everything the plugins made there
// (the bridge, veths, rules, nft tables); lease files are in the test's temporary directory. The
// nftables masquerade's records of the fill's pods, which get no DEL, are outside the namespace: GC of
// the network in it, the first time, deletes them with their rules.
func (n *fillNode) delete(b *testing.B) {
	if _, err := os.Stat(n.node.Path); err == nil && !n.floor {
		if err := n.node.Do(func() error { return masqnft.New().GC(churnNetwork, nil) }); err != nil {
			b.Errorf("%s: %v", n.label, err)
		}
	}
	for _, p := range n.fill {
		p.Delete(b)
	}
	for _, p := range n.pods {
		p.Delete(b)
	}
	n.node.Delete(b)
}

// newFillNode makes a node namespace, sets it up with setup (which returns the pod operations there),
// and adds fill pods through them on workers goroutines, each pod with its hostPort.
func newFillNode(b *testing.B, label string, fill, workers int, cfg fillConfig, setup func(node harness.NetNS) podOps) *fillNode {
	b.Helper()
	n := &fillNode{label: label, node: harness.NewNetNS(b, "fillnode")}
	b.Cleanup(func() { n.delete(b) })
	n.node.Run(b, "ip", "link", "set", "lo", "up")
	n.ops = setup(n.node)
	for range cfg.pods {
		n.pods = append(n.pods, harness.NewNetNS(b, "filltimed"))
	}
	for range fill {
		n.fill = append(n.fill, harness.NewNetNS(b, "fillpod"))
	}
	t0 := time.Now()
	_, errs := inParallel(n.node, workers, fill, func(i int) error {
		_, err := n.ops.add(attachment{fmt.Sprintf("%s%d", fillIDPrefix, i), n.fill[i].Path, portMapping(fillFirstHostPort + i)})
		return err
	})
	for i, err := range errs {
		if err != nil {
			b.Fatalf("%s: fill pod %d: %v", label, i, err)
		}
	}
	if fill > 0 {
		b.Logf("%s: %d pods added in %v", label, fill, time.Since(t0).Round(time.Second))
	}
	return n
}

// chainSetup returns newFillNode's setup for the chain through rt with backend's masquerade.
func chainSetup(b *testing.B, rt *harness.Runtime, backend string) func(harness.NetNS) podOps {
	return func(harness.NetNS) podOps {
		return libcniOps(b, rt, fillConflist(b, backend, harness.Unique("nlfill"), b.TempDir()))
	}
}

// floorSetup returns newFillNode's setup for the floor (BenchmarkFloor's kernelFloor).
func floorSetup(b *testing.B) func(harness.NetNS) podOps {
	return func(node harness.NetNS) podOps {
		var ops podOps
		err := node.Do(func() error {
			var err error
			ops, err = newKernelFloor(harness.Unique("nlflf"), b.TempDir())
			return err
		})
		if err != nil {
			b.Fatalf("floor: set up the node: %v", err)
		}
		return ops
	}
}

// portMapping is the portMappings capability argument for one TCP hostPort.
func portMapping(hostPort int) map[string]any {
	return map[string]any{"portMappings": []map[string]any{
		{"hostPort": hostPort, "containerPort": churnPodPort, "protocol": "tcp"}}}
}

// timePod adds and deletes the next timed pod in the node's timed pod namespace i, timing ADD+DEL.
func (n *fillNode) timePod(b *testing.B, i int) {
	b.Helper()
	pod := n.pods[i]
	kind := "empty"
	if len(n.fill) > 0 {
		kind = "full"
	}
	// Unique across both nodes: the runtime's result cache is shared.
	a := attachment{fmt.Sprintf("%stimed-%s-%d", fillIDPrefix, kind, n.next), pod.Path, portMapping(fillTimedHostPort + n.next)}
	n.next++
	err := n.node.Do(func() error {
		t0 := time.Now()
		if _, err := n.ops.add(a); err != nil {
			n.fails++
			b.Errorf("%s: ADD %s: %v", n.label, a.id, err)
			if !n.floor {
				_ = n.ops.del(a)
			}
			return nil
		}
		if err := n.ops.del(a); err != nil {
			n.fails++
			b.Errorf("%s: DEL %s: %v", n.label, a.id, err)
			return nil
		}
		n.both = append(n.both, time.Since(t0))
		return nil
	})
	if err != nil {
		b.Fatalf("%s: enter node namespace: %v", n.label, err)
	}
}

// timeInTurn times cfg.rounds rounds of cfg.pods pods on each node, pod by pod, empty then full: the
// machine's load drifts over seconds, and both nodes see the same drift. It returns the ADD+DEL p50s.
func timeInTurn(b *testing.B, cfg fillConfig, empty, full *fillNode) (e, f time.Duration) {
	for range cfg.rounds {
		for i := range cfg.pods {
			empty.timePod(b, i)
			full.timePod(b, i)
		}
	}
	return percentile(empty.both, 50), percentile(full.both, 50)
}

// timeFloor times the floor on an empty node and on one it fills with cfg.fill pods itself: what the
// floor gains from one to the other is the kernel's own growth for the same work (a port on a bridge of
// 1,000, a link deleted among 1,000 others with their IPv6 routes, POSTROUTING's 1,000 jumps listed),
// which no plugin avoids.
func timeFloor(b *testing.B, cfg fillConfig) (e, f time.Duration) {
	empty := newFillNode(b, "floor empty", 0, 1, cfg, floorSetup(b))
	full := newFillNode(b, "floor full", cfg.fill, 1, cfg, floorSetup(b))
	empty.floor, full.floor = true, true
	e, f = timeInTurn(b, cfg, empty, full)
	for _, n := range []*fillNode{full, empty} {
		if err := n.node.Do(n.ops.done); err != nil {
			b.Errorf("%s: %v", n.label, err)
		}
		n.delete(b)
	}
	// The report's rows know only the two suites: the floor's figures go into the goal rows' basis.
	b.ReportMetric(ms(f)/ms(e), suiteFloor+"-full/empty")
	b.Logf("floor: ADD+DEL p50 empty %.1f ms, %d pods %.1f ms: %.2fx", ms(e), cfg.fill, ms(f), ms(f)/ms(e))
	return e, f
}

// iptablesPath returns a directory whose iptables, iptables-save, iptables-restore and the ip6tables
// ones are links to the variant's build, for the front of the plugins' PATH.
func iptablesPath(b *testing.B, variant string) string {
	dir := b.TempDir()
	for _, fam := range []string{"iptables", "ip6tables"} {
		for _, suffix := range []string{"", "-save", "-restore"} {
			target, err := exec.LookPath(fam + "-" + variant + suffix)
			if err != nil {
				b.Fatalf("NETLOOM_BENCH_FILL_IPTABLES=%s: %v", variant, err)
			}
			if err := os.Symlink(target, filepath.Join(dir, fam+suffix)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return dir
}

// BenchmarkFilledNode: see the file's comment.
func BenchmarkFilledNode(b *testing.B) {
	harness.RequireRoot(b)
	cfg := loadFillConfig(b)
	if missing := missingPlugins(harness.PluginDir(b), fillScenario.plugins()); len(missing) > 0 {
		b.Fatalf("netloom %v not in %s: run make build", missing, harness.PluginDir(b))
	}
	floor := "the floor not measured (NETLOOM_BENCH_FILL_SUITES=reference)"
	if cfg.only != suiteReference {
		b.Run("floor", func(b *testing.B) {
			e, f := timeFloor(b, cfg)
			floor = fmt.Sprintf("the floor (the same kernel work in-process) %.1f / %.1f ms = %.2fx, +%.1f ms",
				ms(f), ms(e), ms(f)/ms(e), ms(f-e))
		})
	}
	for _, backend := range []string{"iptables", "nftables"} {
		b.Run("ipMasq="+backend, func(b *testing.B) {
			chain := fmt.Sprintf("bridge(ipMasq %s)+host-local+portmap", backend)
			if cfg.iptables != "" {
				chain += ", iptables-" + cfg.iptables
			}
			emptyScenario := chain + ", empty node"
			fullScenario := fmt.Sprintf("%s, %d pods on the node", chain, cfg.fill)
			p50 := map[string][2]time.Duration{}
			for _, s := range benchSuites(fillScenario.plugins()...) {
				if cfg.only != "" && cfg.only != s.name {
					continue
				}
				rt := s.runtime(b)
				if cfg.iptables != "" {
					rt = rt.WithEnv("PATH=" + iptablesPath(b, cfg.iptables) + ":" + os.Getenv("PATH"))
				}
				empty := newFillNode(b, fmt.Sprintf("%s/%s empty", chain, s.name), 0, cfg.workers, cfg, chainSetup(b, rt, backend))
				full := newFillNode(b, fmt.Sprintf("%s/%s full", chain, s.name), cfg.fill, cfg.workers, cfg, chainSetup(b, rt, backend))
				e, f := timeInTurn(b, cfg, empty, full)
				// Gone before the next suite fills its node: 1,000 pods' links and rules would weigh on
				// its numbers.
				full.delete(b)
				empty.delete(b)
				p50[s.name] = [2]time.Duration{e, f}
				results.record(emptyScenario, "seq ADD+DEL p50", "ms", s.name, ms(e), false)
				results.record(fullScenario, "seq ADD+DEL p50", "ms", s.name, ms(f), false)
				results.record(fullScenario, "seq ADD+DEL p90", "ms", s.name, ms(percentile(full.both, 90)), false)
				results.record(fullScenario, "ADD+DEL p50 full/empty", "x", s.name, ms(f)/ms(e), false)
				results.record(fullScenario, "seq failures", unitCount, s.name, float64(empty.fails+full.fails), false)
				b.ReportMetric(ms(f)/ms(e), s.name+"-full/empty")
				b.Logf("%s: ADD+DEL p50 empty %.1f ms, %d pods %.1f ms: %.2fx", s.name, ms(e), cfg.fill, ms(f), ms(f)/ms(e))
			}
			nl, ok := p50[suiteNetloom]
			if !ok {
				return // the reference alone: no goal figure
			}
			ref := "reference not filled (NETLOOM_BENCH_FILL_SUITES=netloom)"
			if r, ok := p50[suiteReference]; ok {
				ref = fmt.Sprintf("reference %.1f / %.1f ms = %.2fx", ms(r[1]), ms(r[0]), ms(r[1])/ms(r[0]))
			}
			results.goal(goalEntry{
				Goal:   "1 flat as the node fills",
				Metric: fmt.Sprintf("%s ADD+DEL p50, %d pods / empty", chain, cfg.fill),
				Value:  ms(nl[1]) / ms(nl[0]), Target: 1.1, AtMost: true,
				Basis: fmt.Sprintf("netloom %.1f ms with %d pods, %.1f ms empty (+%.1f ms), %d rounds of %d pods interleaved; %s; %s",
					ms(nl[1]), cfg.fill, ms(nl[0]), ms(nl[1]-nl[0]), cfg.rounds, cfg.pods, ref, floor),
			})
		})
	}
}
