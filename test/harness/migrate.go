package harness

import (
	"os"
	"path/filepath"
	"testing"
)

// ReferenceSuite returns one directory holding the reference plugins called names (built by
// ReferencePlugin), as a node's /opt/cni/bin holds the suite: a plugin that delegates (bridge to
// host-local) finds the other there.
func ReferenceSuite(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.Symlink(filepath.Join(ReferencePlugin(t, n), n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// SwitchTo returns a runtime that keeps r's result cache but finds plugins only in dirs: the node after
// its plugin directory was replaced while pods run. The runtime's CHECK and DEL of pods that r added
// then reach the new plugins with the results r cached.
func (r *Runtime) SwitchTo(dirs ...string) *Runtime {
	return &Runtime{Path: dirs, CacheDir: r.CacheDir, Env: r.Env, cni: newCNIConfig(dirs, r.CacheDir, r.Env)}
}
