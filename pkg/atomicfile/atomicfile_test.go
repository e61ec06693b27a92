package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "10-net.conflist")
	for _, content := range []string{"one", "two"} {
		if err := Write(path, strings.NewReader(content), 0o640); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("holds %q, want %q", b, content)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", st.Mode())
	}
	// A reader that fails: the old content stays, no temporary file is left.
	if err := Write(path, iotest.ErrReader(errors.New("boom")), 0o640); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failing reader: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Errorf("after a failed write the file holds %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %v, want only the file", entries)
	}
	if err := Write(filepath.Join(dir, "missing", "f"), strings.NewReader("x"), 0o644); err == nil {
		t.Error("a missing directory is an error")
	}
}
