package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// pluginBuild is the result of building the plugins once for this test process.
type pluginBuild struct {
	once   sync.Once
	dir    string
	err    error            // the whole build failed (no Go, no module, ...)
	failed map[string]error // plugin name -> why it did not build, when only some failed
}

// builds is shared by every test in the process: building all plugins takes seconds, and every
// integration test needs them. It is the harness's only package-level state.
var builds pluginBuild

// buildDirPrefix names the temporary build directories, which carry the building process's PID so a
// later run can remove the ones whose process has exited.
const buildDirPrefix = "netloom-plugins-"

// PluginDir returns a directory that holds every netloom plugin binary and nothing else: $NETLOOM_BIN
// when set (e.g. the output of `make build`), otherwise the plugins built once per test process with
// `go build -trimpath` (CGO_ENABLED=0) from ./plugins/... and ./cmd/... into a temporary directory.
func PluginDir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("NETLOOM_BIN"); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatalf("NETLOOM_BIN=%q: %v", dir, err)
		}
		return abs
	}
	builds.once.Do(builds.run)
	if builds.err != nil {
		t.Fatalf("building the plugins: %v", builds.err)
	}
	return builds.dir
}

// requirePlugin fails when plugin did not build, with the compiler's message rather than libcni's
// "failed to find plugin".
func requirePlugin(dir, plugin string) error {
	if err, ok := builds.failed[plugin]; ok && dir == builds.dir {
		return fmt.Errorf("plugin %q did not build: %w", plugin, err)
	}
	if _, err := os.Stat(filepath.Join(dir, plugin)); err != nil {
		return fmt.Errorf("plugin %q is not in %s: %w", plugin, dir, err)
	}
	return nil
}

func (b *pluginBuild) run() {
	sweepStaleBuildDirs()
	gobin := goBinary()
	root, err := moduleRoot(gobin)
	if err != nil {
		b.err = err
		return
	}
	pkgs, err := mainPackages(gobin, root)
	if err != nil {
		b.err = err
		return
	}
	if len(pkgs) == 0 {
		b.err = fmt.Errorf("no main packages under %s/plugins", root)
		return
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", buildDirPrefix, os.Getpid()))
	if err != nil {
		b.err = err
		return
	}
	b.dir = dir
	// One build for all is fastest. If it fails, build each plugin on its own so that one plugin that
	// does not compile fails only the tests that use it.
	if goBuild(gobin, root, dir, pkgs...) == nil {
		return
	}
	b.failed = map[string]error{}
	for _, p := range pkgs {
		if err := goBuild(gobin, root, dir, p); err != nil {
			b.failed[filepath.Base(p)] = err
		}
	}
	if len(b.failed) == len(pkgs) {
		b.err = fmt.Errorf("no plugin built: %v", errors.Join(mapValues(b.failed)...))
	}
}

func mapValues(m map[string]error) []error {
	out := make([]error, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// goBinary finds the go command: on PATH, else where Debian CI installs it.
func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// moduleRoot is the directory of the go.mod governing the working directory (a test runs in its
// package's directory).
func moduleRoot(gobin string) (string, error) {
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the netloom module (go env GOMOD is empty)")
	}
	return filepath.Dir(mod), nil
}

// mainPackages lists the import paths of the commands under plugins/ and cmd/ (e.g. `netloom`, which
// the overlay tests run).
func mainPackages(gobin, root string) ([]string, error) {
	cmd := exec.Command(gobin, "list", "-e", "-f", `{{if eq .Name "main"}}{{.ImportPath}}{{end}}`, "./plugins/...", "./cmd/...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list ./plugins/... ./cmd/...: %w: %s", err, stderr.Bytes())
	}
	return strings.Fields(string(out)), nil
}

// goBuild builds pkgs into the directory dir, each binary named after its package's folder.
func goBuild(gobin, root, dir string, pkgs ...string) error {
	args := append([]string{"build", "-trimpath", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command(gobin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// sweepStaleBuildDirs removes build directories left by test processes that have exited: a test binary
// has no hook at exit, so each run cleans up after the earlier ones.
func sweepStaleBuildDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), buildDirPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), buildDirPrefix)
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			_ = os.RemoveAll(d)
		}
	}
}
