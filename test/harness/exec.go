package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// cnitoolModule is the cnitool `make deps` installs and the harness installs when it is missing.
const cnitoolModule = "github.com/containernetworking/cni/cnitool@v1.3.1"

// RunPlugin executes a plugin binary as a runtime that does not use libcni would: the CNI_* variables
// come from env only (nothing leaks in from the test's own environment), stdin is the network config,
// and CNI_PATH defaults to PluginDir so a delegated IPAM plugin is found. binary is a plugin name looked
// up in PluginDir, or a path. It returns stdout (the result, or the CNI error JSON) and, on a non-zero
// exit, an error carrying stderr.
func RunPlugin(t testing.TB, binary string, env map[string]string, stdin []byte) ([]byte, error) {
	t.Helper()
	dir := PluginDir(t)
	path := binary
	if !strings.Contains(binary, "/") {
		if err := requirePlugin(dir, binary); err != nil {
			return nil, err
		}
		path = filepath.Join(dir, binary)
	}
	vars := map[string]string{"PATH": os.Getenv("PATH"), "CNI_PATH": dir}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = envList(vars)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w (stderr: %q)", filepath.Base(path), env["CNI_COMMAND"], err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func envList(vars map[string]string) []string {
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Cnitool runs `cnitool args...` with CNI_PATH set to PluginDir and env ("NETCONFPATH=dir",
// "CNI_IFNAME=eth0", "CAP_ARGS=...") added to the test's environment; it returns the combined output.
// cnitool is taken from PATH or $(go env GOPATH)/bin, and installed there once when missing.
func Cnitool(t testing.TB, env []string, args ...string) ([]byte, error) {
	t.Helper()
	tool, err := cnitoolPath()
	if err != nil {
		t.Fatalf("cnitool: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	// Later entries win in exec's deduplication: the caller's env overrides CNI_PATH and the process's.
	cmd.Env = append(append(os.Environ(), "CNI_PATH="+PluginDir(t)), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("cnitool %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// cnitoolInstall finds or installs cnitool once per test process.
var cnitoolInstall struct {
	once sync.Once
	path string
	err  error
}

func cnitoolPath() (string, error) {
	cnitoolInstall.once.Do(func() {
		cnitoolInstall.path, cnitoolInstall.err = findOrInstallCnitool()
	})
	return cnitoolInstall.path, cnitoolInstall.err
}

func findOrInstallCnitool() (string, error) {
	if p, err := exec.LookPath("cnitool"); err == nil {
		return p, nil
	}
	gobin := goBinary()
	out, err := exec.Command(gobin, "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPATH: %w", err)
	}
	gopath := filepath.SplitList(strings.TrimSpace(string(out)))
	if len(gopath) == 0 {
		return "", fmt.Errorf("go env GOPATH is empty")
	}
	p := filepath.Join(gopath[0], "bin", "cnitool")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	cmd := exec.Command(gobin, "install", cnitoolModule)
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(p), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("not on PATH nor in %s, and go install %s failed: %w: %s", filepath.Dir(p), cnitoolModule, err, out)
	}
	return p, nil
}
