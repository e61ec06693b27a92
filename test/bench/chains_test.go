package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netloom/netloom/test/harness"
)

// Every churn scenario's conflist parses as libcni reads it and runs exactly the plugins the scenario
// names, in order (what the not-built check and the reference path are made of).
func TestChurnConflists(t *testing.T) {
	for _, sc := range churnScenarios() {
		list, err := harness.ParseConfList(churnConflist(sc, "nlcb0", "nlcm0", "/tmp/x"))
		if err != nil {
			t.Errorf("%s: %v", sc.name, err)
			continue
		}
		var types []string
		for _, p := range list.Plugins {
			types = append(types, p.Network.Type)
			if p.Network.IPAM.Type != "" {
				types = append(types, p.Network.IPAM.Type)
			}
		}
		if !slices.Equal(types, sc.plugins()) {
			t.Errorf("%s: conflist runs %v, plugins() says %v", sc.name, types, sc.plugins())
		}
		if want := strings.Join(sc.plugins(), "+"); sc.name != want {
			t.Errorf("scenario %q is named after another chain than its plugins (%s)", sc.name, want)
		}
	}
}

func TestMissingPlugins(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"bridge", "host-local"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "tuning"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := missingPlugins(dir, []string{"bridge", "host-local", "portmap", "tuning"})
	if !slices.Equal(got, []string{"portmap", "tuning"}) {
		t.Errorf("missingPlugins = %v, want portmap and tuning (a directory is no binary)", got)
	}
}

func TestTargetVerdict(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		row  reportRow
		want string
	}{
		{reportRow{Ratio: f(0.5)}, ""},
		{reportRow{Ratio: f(0.5), Target: f(0.7)}, "target 0.70: met"},
		{reportRow{Ratio: f(0.7), Target: f(0.7)}, "target 0.70: met"},
		{reportRow{Ratio: f(0.9), Target: f(0.7)}, "target 0.70: MISSED"},
		{reportRow{Target: f(0.7)}, "target 0.70: no ratio"},
	} {
		if got := c.row.targetVerdict(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.row, got, c.want)
		}
	}
}

// A target set before or after the values arrive ends up on the row, and a scenario reported not built
// twice is listed once.
func TestReportTargetAndNotBuilt(t *testing.T) {
	r := newBenchReport()
	r.record("s", "seq ADD+DEL p50", "ms", suiteNetloom, 6, false)
	r.target("s", "seq ADD+DEL p50", ratioTarget)
	r.record("s", "seq ADD+DEL p50", "ms", suiteReference, 10, false)
	row := r.index[[2]string{"s", "seq ADD+DEL p50"}]
	if row.targetVerdict() != "target 0.70: met" {
		t.Errorf("verdict %q for 6 vs 10 ms", row.targetVerdict())
	}
	r.notBuilt("x", []string{"tuning"})
	r.notBuilt("x", []string{"tuning"})
	var out strings.Builder
	r.print(&out)
	if n := strings.Count(out.String(), "x: not built (netloom tuning missing)"); n != 1 {
		t.Errorf("not-built line %d times in:\n%s", n, out.String())
	}
}

// A goal is met on the side its target says, is replaced when recorded again, and is printed with its
// verdict.
func TestReportGoals(t *testing.T) {
	r := newBenchReport()
	r.goal(goalEntry{Goal: "1 flat", Metric: "full/empty", Value: 1.3, Target: 1.1, AtMost: true})
	r.goal(goalEntry{Goal: "1 flat", Metric: "full/empty", Value: 1.05, Target: 1.1, AtMost: true})
	r.goal(goalEntry{Goal: "3 concurrency", Metric: "c32 pods/s netloom/reference", Value: 3.5, Target: 4})
	if len(r.goals) != 2 || !r.goals[0].met() || r.goals[1].met() {
		t.Fatalf("goals %+v: want the replaced 1.05 met and 3.5 of >= 4 missed", r.goals)
	}
	var out strings.Builder
	r.print(&out)
	for _, want := range []string{"1.05", "<= 1.10", "met", ">= 4.00", "MISSED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
