package fault

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestFaultMatches(t *testing.T) {
	for _, tc := range []struct {
		spec, name, step string
		n                int64
		want             bool
	}{
		{"bridge:plug", "bridge", "plug", 2, true},
		{"bridge:plug", "bridge", "allocate", 1, false},
		{"bridge:plug", "portmap", "plug", 2, false},
		{"bridge:2", "bridge", "plug", 2, true},
		{"bridge:2", "bridge", "allocate", 1, false},
		{"bridge:2", "host-local", "x", 2, false},
		{"bridge:0", "bridge", "x", 0, false},
		{"bridge:-1", "bridge", "x", -1, false},
		{"bridge:", "bridge", "", 1, false},
		{"bridge", "bridge", "bridge", 1, false},
		{"", "bridge", "plug", 1, false},
		{":plug", "", "plug", 1, false},             // Main never ran: no plugin name, never a match
		{"bridge:Plug", "bridge", "plug", 1, false}, // exact, case-sensitive
		{"bridge:plug:x", "bridge", "plug", 1, false},
	} {
		if got := faultMatches(tc.spec, tc.name, tc.step, tc.n); got != tc.want {
			t.Errorf("faultMatches(%q, %q, %q, %d) = %v, want %v", tc.spec, tc.name, tc.step, tc.n, got, tc.want)
		}
	}
}

// faultChild is set in the child process TestFaultPointKills starts.
const faultChild = "NETLOOM_TEST_FAULT_CHILD"

// TestFaultPointChild is the body of the child process: it passes three fault points, printing each
// step's name before running it. Outside TestFaultPointKills it does nothing.
func TestFaultPointChild(t *testing.T) {
	if os.Getenv(faultChild) == "" {
		t.Skip("runs only as TestFaultPointKills's child")
	}
	SetPlugin("demo")
	defer fmt.Println("deferred") // a kill must skip it
	for _, step := range []string{"one", "two", "three"} {
		Point(step)
		fmt.Println("ran", step)
	}
	fmt.Println("finished")
}

func TestFaultPointKills(t *testing.T) {
	for _, tc := range []struct {
		spec   string
		killed bool
		ran    []string
	}{
		{"", false, []string{"one", "two", "three"}},
		{"demo:one", true, nil},
		{"demo:two", true, []string{"one"}},
		{"demo:3", true, []string{"one", "two"}},
		{"demo:4", false, []string{"one", "two", "three"}},
		{"other:two", false, []string{"one", "two", "three"}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestFaultPointChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), faultChild+"=1")
			if tc.spec != "" {
				cmd.Env = append(cmd.Env, Env+"="+tc.spec)
			}
			out, err := cmd.Output()
			var ran []string
			for line := range strings.SplitSeq(string(out), "\n") {
				if s, ok := strings.CutPrefix(line, "ran "); ok {
					ran = append(ran, s)
				}
			}
			if fmt.Sprint(ran) != fmt.Sprint(tc.ran) {
				t.Errorf("steps run: %v, want %v", ran, tc.ran)
			}
			var exit *exec.ExitError
			if !tc.killed {
				if err != nil {
					t.Errorf("child failed: %v\n%s", err, out)
				}
				return
			}
			if !errors.As(err, &exit) {
				t.Fatalf("child: %v, want killed by SIGKILL", err)
			}
			ws, ok := exit.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Errorf("child ended with %v, want killed by SIGKILL", exit)
			}
			if strings.Contains(string(out), "deferred") || strings.Contains(string(out), "finished") {
				t.Errorf("code after the fault point ran:\n%s", out)
			}
		})
	}
}
