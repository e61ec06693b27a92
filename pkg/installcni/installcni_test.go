package installcni

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestInstall(t *testing.T) {
	from, to := t.TempDir(), filepath.Join(t.TempDir(), "opt", "cni", "bin")
	for _, name := range []string{"bridge", "portmap", "netloomd"} {
		if err := os.WriteFile(filepath.Join(from, name), []byte("new "+name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(from, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	// An old plugin in place, and one of another suite that must stay.
	if err := os.WriteFile(filepath.Join(to, "bridge"), []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, "flannel"), []byte("other"), 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := Install(from, to)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"bridge", "netloomd", "portmap"}) {
		t.Errorf("installed %v", names)
	}
	entries, _ := os.ReadDir(to)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
		st, _ := os.Stat(filepath.Join(to, e.Name()))
		if st.Mode().Perm() != 0o755 {
			t.Errorf("%s mode %v, want 0755", e.Name(), st.Mode())
		}
	}
	if !slices.Equal(got, []string{"bridge", "flannel", "netloomd", "portmap"}) {
		t.Errorf("destination holds %v (a temporary file left, or another suite's plugin removed)", got)
	}
	if b, _ := os.ReadFile(filepath.Join(to, "bridge")); string(b) != "new bridge" {
		t.Errorf("bridge holds %q", b)
	}
}

// TestReplaceRunning: a binary that is running is replaced without "text file busy" (the rename gives
// the path a new file; the running process keeps the old one).
func TestReplaceRunning(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	from, to := t.TempDir(), t.TempDir()
	raw, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, "sleep"), raw, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(to, "sleep"), "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := os.WriteFile(filepath.Join(from, "sleep"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(from, to); err != nil && strings.Contains(err.Error(), "busy") {
		t.Fatalf("replacing a running binary: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}
