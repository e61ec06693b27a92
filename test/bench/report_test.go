package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// Suite names as the report's columns know them.
const (
	suiteNetloom   = "netloom"
	suiteReference = "reference"
)

// unitCount marks a metric that is a tally (failures, leftovers): it gets no ratio.
const unitCount = "count"

// ratioTarget is the ratio netloom aims at on the metrics that carry a target (a chain's ADD+DEL p50):
// netloom in at most 0.7 of the reference's time.
const ratioTarget = 0.7

// TestMain runs the package's tests and benchmarks as usual and then, when a benchmark recorded
// anything into results (BenchmarkChurn, BenchmarkHostLocalLeases, BenchmarkPluginCost), prints one
// table comparing netloom with the reference, and writes it as JSON to $NETLOOM_BENCH_JSON when set.
func TestMain(m *testing.M) {
	code := m.Run()
	if !results.empty() {
		results.print(os.Stdout)
		if path := os.Getenv("NETLOOM_BENCH_JSON"); path != "" {
			if err := results.writeJSON(path); err != nil {
				fmt.Fprintf(os.Stderr, "bench report: %v\n", err)
				if code == 0 {
					code = 1
				}
			} else {
				fmt.Printf("bench report written to %s\n", path)
			}
		}
	}
	os.Exit(code)
}

// results collects what the report benchmarks measured. It is the package's only mutable state:
// TestMain prints it after m.Run, and a benchmark has no other way to hand a value to TestMain.
var results = newBenchReport()

// reportRow is one line of the table: one metric of one scenario for both suites. Ratio is
// netloom/reference for costs (times, bytes) and reference/netloom for rates (pods/s), so below 1
// always means netloom is faster or smaller.
type reportRow struct {
	Scenario       string   `json:"scenario"`
	Metric         string   `json:"metric"`
	Unit           string   `json:"unit"`
	Netloom        *float64 `json:"netloom,omitempty"`
	Reference      *float64 `json:"reference,omitempty"`
	Ratio          *float64 `json:"ratio,omitempty"`
	Target         *float64 `json:"target,omitempty"` // the ratio aimed at: met when Ratio <= Target
	HigherIsBetter bool     `json:"higherIsBetter,omitempty"`
}

// targetVerdict says how the row's ratio compares with its target ("" without a target).
func (row *reportRow) targetVerdict() string {
	switch {
	case row.Target == nil:
		return ""
	case row.Ratio == nil:
		return fmt.Sprintf("target %.2f: no ratio", *row.Target)
	case *row.Ratio <= *row.Target:
		return fmt.Sprintf("target %.2f: met", *row.Target)
	default:
		return fmt.Sprintf("target %.2f: MISSED", *row.Target)
	}
}

// notBuiltEntry is a scenario that did not run because netloom's plugin directory lacks plugins of it.
type notBuiltEntry struct {
	Scenario string   `json:"scenario"`
	Missing  []string `json:"missing"`
}

// notRunEntry is a scenario this run could not measure, and why (a kernel feature missing here and no
// VM-lane figures to fold in).
type notRunEntry struct {
	Scenario string `json:"scenario"`
	Reason   string `json:"reason"`
}

// leftoverEntry is what one suite left behind after one scenario run (nothing, when Items is empty).
type leftoverEntry struct {
	Scenario string   `json:"scenario"`
	Suite    string   `json:"suite"`
	Round    int      `json:"round"`
	Items    []string `json:"items"`
}

// goalEntry is one figure of issue 15's goals beside its target: a value that is not simply
// netloom/reference (netloom full against netloom empty, netloom against the floor, a pods/s ratio with
// its own bar), with the run's other figures it was computed from named in Basis.
type goalEntry struct {
	Goal   string  `json:"goal"`   // "1 flat as the node fills", ...
	Metric string  `json:"metric"` // what Value is, e.g. "ADD+DEL p50 1,000 pods / empty"
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	AtMost bool    `json:"atMost"` // met when Value <= Target; else when Value >= Target
	Basis  string  `json:"basis,omitempty"`
}

// met says whether the goal's value reaches its target.
func (g goalEntry) met() bool {
	if g.AtMost {
		return g.Value <= g.Target
	}
	return g.Value >= g.Target
}

type benchReport struct {
	mu        sync.Mutex
	rows      []*reportRow
	index     map[[2]string]*reportRow
	goals     []goalEntry
	leftovers []leftoverEntry
	notBuilts []notBuiltEntry
	notRuns   []notRunEntry
	params    map[string]string
}

func newBenchReport() *benchReport {
	return &benchReport{index: map[[2]string]*reportRow{}, params: map[string]string{}}
}

func (r *benchReport) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rows) == 0 && len(r.goals) == 0 && len(r.leftovers) == 0 && len(r.notBuilts) == 0 && len(r.notRuns) == 0
}

// goal records one goal figure beside its target; a benchmark the framework runs again replaces it.
func (r *benchReport) goal(g goalEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.goals {
		if r.goals[i].Goal == g.Goal && r.goals[i].Metric == g.Metric {
			r.goals[i] = g
			return
		}
	}
	r.goals = append(r.goals, g)
}

// record sets suite's value of scenario's metric; a benchmark the framework runs again overwrites it.
func (r *benchReport) record(scenario, metric, unit, suite string, v float64, higherIsBetter bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := [2]string{scenario, metric}
	row, ok := r.index[key]
	if !ok {
		row = &reportRow{Scenario: scenario, Metric: metric, Unit: unit, HigherIsBetter: higherIsBetter}
		r.index[key] = row
		r.rows = append(r.rows, row)
	}
	switch suite {
	case suiteNetloom:
		row.Netloom = &v
	case suiteReference:
		row.Reference = &v
	default:
		panic(fmt.Sprintf("bench report: unknown suite %q", suite))
	}
	row.Ratio = nil
	if row.Netloom != nil && row.Reference != nil && unit != unitCount {
		num, den := *row.Netloom, *row.Reference
		if higherIsBetter {
			num, den = den, num
		}
		if den != 0 {
			q := num / den
			row.Ratio = &q
		}
	}
}

// target sets the ratio aimed at for scenario's metric, which record fills in.
func (r *benchReport) target(scenario, metric string, ratio float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if row, ok := r.index[[2]string{scenario, metric}]; ok {
		row.Target = &ratio
	}
}

// notBuilt records a scenario skipped because netloom has no build of the plugins missing (yet).
func (r *benchReport) notBuilt(scenario string, missing []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.notBuilts {
		if e.Scenario == scenario {
			return
		}
	}
	r.notBuilts = append(r.notBuilts, notBuiltEntry{Scenario: scenario, Missing: missing})
}

// notRun records a scenario this run did not measure, with the reason the report prints.
func (r *benchReport) notRun(scenario, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.notRuns {
		if e.Scenario == scenario {
			return
		}
	}
	r.notRuns = append(r.notRuns, notRunEntry{Scenario: scenario, Reason: reason})
}

// leftover records what one suite's run of one scenario left behind.
func (r *benchReport) leftover(scenario, suite string, round int, items []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if items == nil {
		items = []string{} // "none" in the JSON, not null
	}
	r.leftovers = append(r.leftovers, leftoverEntry{Scenario: scenario, Suite: suite, Round: round, Items: items})
}

// param records a parameter of the run (pod counts, rounds) for the JSON.
func (r *benchReport) param(key, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.params[key] = value
}

func formatValue(v *float64) string {
	if v == nil {
		return "-"
	}
	switch a := math.Abs(*v); {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", *v)
	case a >= 1:
		return fmt.Sprintf("%.2f", *v)
	default:
		return fmt.Sprintf("%.3f", *v)
	}
}

func (r *benchReport) print(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(w, "\nnetloom vs reference v1.9.1 (ratio = netloom/reference for costs, reference/netloom for rates: < 1 means netloom is better)")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmetric\tnetloom\treference\tratio\t")
	for _, row := range r.rows {
		ratio := "-"
		if row.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *row.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s (%s)\t%s\t%s\t%s\t%s\n", row.Scenario, row.Metric, row.Unit,
			formatValue(row.Netloom), formatValue(row.Reference), ratio, row.targetVerdict())
	}
	_ = tw.Flush()
	if len(r.goals) > 0 {
		fmt.Fprintln(w, "\ngoals (issue 15): each figure beside its target")
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "goal\tmetric\tvalue\ttarget\tverdict\tbasis")
		for _, g := range r.goals {
			op, verdict := ">=", "met"
			if g.AtMost {
				op = "<="
			}
			if !g.met() {
				verdict = "MISSED"
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s %.2f\t%s\t%s\n", g.Goal, g.Metric, g.Value, op, g.Target, verdict, g.Basis)
		}
		_ = tw.Flush()
	}
	for _, e := range r.notBuilts {
		fmt.Fprintf(w, "%s: not built (netloom %s missing): not run\n", e.Scenario, strings.Join(e.Missing, ", "))
	}
	for _, e := range r.notRuns {
		fmt.Fprintf(w, "%s: NOT RUN: %s\n", e.Scenario, e.Reason)
	}
	clean := true
	for _, l := range r.leftovers {
		if len(l.Items) == 0 {
			continue
		}
		clean = false
		fmt.Fprintf(w, "LEFTOVERS %s / %s (round %d):\n", l.Scenario, l.Suite, l.Round)
		for _, it := range l.Items {
			fmt.Fprintf(w, "  %s\n", it)
		}
	}
	if clean && len(r.leftovers) > 0 {
		fmt.Fprintf(w, "leftovers: none (%d scenario runs checked)\n", len(r.leftovers))
	}
}

// machineFacts describes where the numbers come from.
func machineFacts() map[string]string {
	kernel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		kernel = []byte("unknown: " + err.Error())
	}
	host, _ := os.Hostname()
	return map[string]string{
		"nproc":      fmt.Sprint(runtime.NumCPU()),
		"gomaxprocs": fmt.Sprint(runtime.GOMAXPROCS(0)),
		"kernel":     strings.TrimSpace(string(kernel)),
		"go":         runtime.Version(),
		"goarch":     runtime.GOARCH,
		"date":       time.Now().UTC().Format(time.RFC3339),
		"hostname":   host,
	}
}

func (r *benchReport) writeJSON(path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := json.MarshalIndent(map[string]any{
		"machine":    machineFacts(),
		"parameters": r.params,
		"ratio":      "netloom/reference for costs, reference/netloom for rates (higherIsBetter): < 1 means netloom is better",
		"rows":       r.rows,
		"goals":      r.goals,
		"leftovers":  r.leftovers,
		"notBuilt":   r.notBuilts,
		"notRun":     r.notRuns,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
