// Package atomicfile replaces a file so that a reader sees the old content or the new one, never part of
// one: a CNI config a runtime reloads on change, a plugin binary a runtime may exec at any moment.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write makes path hold what r yields, with mode perm: the data goes to a temporary file in path's
// directory (named "."+base+".netloom-tmp-*": hidden, and without a suffix a runtime reads), which is
// synced and renamed over path; then the directory is synced. A running executable at path is replaced
// without "text file busy" (the rename gives the path a new file). On failure the temporary file is
// removed and path is untouched.
func Write(path string, r io.Reader, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".netloom-tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, r); err == nil {
		if err = tmp.Chmod(perm); err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
