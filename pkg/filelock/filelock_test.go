package filelock

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestCreateExcludesAndTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.lock")
	unlock, err := Create(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", st, err)
	}
	// flock locks belong to the open file description: a second open in this process conflicts too.
	if _, err := Create(path, 20*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second Create while held: %v, want ErrTimeout", err)
	}
	unlock()
	unlock2, err := Create(path, 20*time.Millisecond)
	if err != nil {
		t.Fatalf("Create after release: %v", err)
	}
	unlock2()
}

func TestCreateSerialises(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		inside  int
		overlap bool
	)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			wait := time.Duration(i%2) * 5 * time.Second // both the blocking and the polling wait
			unlock, err := Create(path, wait)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			overlap = overlap || inside > 1
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}(i)
	}
	wg.Wait()
	if overlap {
		t.Fatal("two holders at once")
	}
}

func TestCreateRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "x.lock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(link, 0); err == nil {
		t.Fatal("Create followed a symbolic link")
	}
}
