package doctor

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []Status
		want     int
	}{
		{"nothing", nil, 0},
		{"all ok", []Status{OK, OK}, 0},
		{"warnings are allowed", []Status{OK, Warn}, 0},
		{"could not check", []Status{OK, Unknown, Warn}, 2},
		{"a failure wins over could not check", []Status{Unknown, Fail, OK}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Report
			for _, s := range tc.statuses {
				r.Findings = append(r.Findings, Finding{Status: s})
			}
			if got := r.ExitCode(); got != tc.want {
				t.Errorf("ExitCode() = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRunNamesFindingsAndOrdersTable(t *testing.T) {
	checks := []Check{
		{Name: "first", Run: func(*Node) []Finding { return []Finding{{Status: OK, Found: "fine"}} }},
		{Name: "second", Run: func(*Node) []Finding {
			return []Finding{{Status: Fail, Subject: "eth0", Found: "broken", Fix: "mend it"}}
		}},
	}
	r := Run(&Node{}, checks)
	if r.Findings[0].Check != "first" || r.Findings[1].Check != "second" {
		t.Fatalf("findings not named after their checks: %+v", r.Findings)
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "FAIL") || !strings.Contains(lines[2], "fine") {
		t.Errorf("table not worst-first:\n%s", table.String())
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Findings []map[string]string `json:"findings"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Findings[1]["status"] != "fail" || back.Findings[1]["fix"] != "mend it" {
		t.Errorf("json = %s", js.String())
	}
}
