package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestDoctorCommandArguments(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // in stdout (the report) or stderr
	}{
		{"conflist and conf-dir", []string{"--conflist", "a.conflist", "--conf-dir", dir}, 2, "exclude each other"},
		{"stray argument", []string{"now"}, 2, "usage: netloom doctor"},
		{"help", []string{"-h"}, 2, "Exit status: 0"},
		{"a conflist that is not there", []string{"--conflist", filepath.Join(dir, "gone.conflist"), "--cni-bin-dir", dir, "--cache-dir", dir, "--json"}, 1, `"check": "conflist"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := doctorCommand(tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
				t.Errorf("exit %d, want %d with %q in:\n%s%s", code, tc.code, tc.out, stdout.String(), stderr.String())
			}
			if strings.Contains(strings.Join(tc.args, " "), "--json") {
				var r struct{ Findings []map[string]string }
				if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || len(r.Findings) == 0 {
					t.Errorf("--json output does not parse (%v):\n%s", err, stdout.String())
				}
			}
		})
	}
}
