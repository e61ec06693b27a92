package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// referenceModule and referenceVersion name the reference plugin suite netloom is a drop-in for.
const (
	referenceModule  = "github.com/containernetworking/plugins"
	referenceVersion = "v1.9.1"
)

// referenceKinds says under which folder of the reference suite each plugin lives.
var referenceKinds = map[string]string{
	"bridge": "main", "loopback": "main", "macvlan": "main", "ipvlan": "main", "ptp": "main",
	"host-device": "main", "vlan": "main", "dummy": "main", "tap": "main",
	"host-local": "ipam", "static": "ipam", "dhcp": "ipam",
	"portmap": "meta", "bandwidth": "meta", "firewall": "meta", "tuning": "meta", "sbr": "meta", "vrf": "meta",
}

// referenceBuilds holds the reference plugins installed so far in this process: name -> dir.
var referenceBuilds struct {
	sync.Mutex
	dirs map[string]string
}

// ReferencePlugin installs the reference suite's plugin called name at referenceVersion with
// `go install` (its own go.mod, so netloom's dependencies do not leak into it) and returns a directory
// holding only that binary. The directory is kept across runs under the OS temp dir, keyed by version,
// so only the first run pays for the build. Tests use it to compare netloom with the plugin it
// replaces, or to prepare state the reference plugin wrote.
func ReferencePlugin(t testing.TB, name string) string {
	t.Helper()
	kind, ok := referenceKinds[name]
	if !ok {
		t.Fatalf("no reference plugin called %q", name)
	}
	referenceBuilds.Lock()
	defer referenceBuilds.Unlock()
	if dir, ok := referenceBuilds.dirs[name]; ok {
		return dir
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("netloom-reference-%s-%s", referenceVersion, name))
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		pkg := fmt.Sprintf("%s/plugins/%s/%s@%s", referenceModule, kind, name, referenceVersion)
		cmd := exec.Command(goBinary(), "install", "-trimpath", pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+dir, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go install %s: %v\n%s", pkg, err, strings.TrimSpace(string(out)))
		}
	}
	if referenceBuilds.dirs == nil {
		referenceBuilds.dirs = map[string]string{}
	}
	referenceBuilds.dirs[name] = dir
	return dir
}

// ReferencePluginNames lists every reference plugin ReferencePlugin can install, sorted.
func ReferencePluginNames() []string {
	names := make([]string, 0, len(referenceKinds))
	for name := range referenceKinds {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
