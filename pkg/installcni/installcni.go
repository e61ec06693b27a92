// Package installcni copies netloom's binaries into a node's CNI bin directory the way a runtime can
// stand: each file replaced atomically and made executable (atomicfile.Write), so a runtime that execs a
// plugin meanwhile runs the old binary or the new one, never a half-written file, and a running binary
// being replaced is no "text file busy".
package installcni

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/netloom/netloom/pkg/atomicfile"
)

// Install copies every regular file of from into to (created if missing) and returns the names copied.
func Install(from, to string) ([]string, error) {
	entries, err := os.ReadDir(from)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return nil, err
	}
	var done []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := installOne(filepath.Join(from, e.Name()), to); err != nil {
			return done, fmt.Errorf("install %s: %w", e.Name(), err)
		}
		done = append(done, e.Name())
	}
	sort.Strings(done)
	return done, nil
}

func installOne(src, dir string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(filepath.Join(dir, filepath.Base(src)), in, 0o755)
}

// Main is `netloomd install-cni [--from DIR] [--to DIR]`; it returns the exit code.
func Main(args []string) int {
	fs := flag.NewFlagSet("netloomd install-cni", flag.ContinueOnError)
	self, _ := os.Executable()
	from := fs.String("from", filepath.Dir(self), "`directory` holding netloom's binaries (default: this executable's)")
	to := fs.String("to", "/host/opt/cni/bin", "the node's CNI bin `directory`, as mounted in the container")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	names, err := Install(*from, *to)
	for _, n := range names {
		fmt.Printf("installed %s\n", filepath.Join(*to, n))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "netloomd install-cni: %v\n", err)
		return 1
	}
	return 0
}
