package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// UseIPTablesVariant makes "iptables", "iptables-save", "iptables-restore" and the ip6tables ones in
// PATH the variant's build ("legacy" or "nft") for the rest of t, for this process and the plugins it
// runs (libcni passes them its environment): netloom runs the save and restore tools, the reference
// plugins `iptables`. Not for parallel tests (t.Setenv).
func UseIPTablesVariant(t testing.TB, variant string) {
	t.Helper()
	dir := t.TempDir()
	for _, base := range []string{"iptables", "ip6tables"} {
		for _, op := range []string{"", "-save", "-restore"} {
			build := base + "-" + variant + op // iptables-legacy-save, the legacy build of iptables-save
			target, err := exec.LookPath(build)
			if err != nil {
				t.Fatalf("iptables variant %q: %v (install iptables: `make deps`)", variant, err)
			}
			if err := os.Symlink(target, filepath.Join(dir, base+op)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}
