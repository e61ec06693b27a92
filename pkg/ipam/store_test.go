package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
)

func att(id, ifname string) conf.Attachment { return conf.Attachment{ContainerID: id, IfName: ifname} }

func openStore(t *testing.T, dataDir, network string) *Store {
	t.Helper()
	s, err := OpenStore(dataDir, network)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreLayout(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "networks")
	s := openStore(t, dataDir, "net1")
	defer s.Close()
	dir := filepath.Join(dataDir, "net1")
	for _, tc := range []struct {
		addr, id, ifname string
		set              int
	}{{"10.1.0.2", "ctr-a", "eth0", 0}, {"fd01::2", "ctr-a", "eth0", 1}, {"10.1.0.3", "ctr-b", "net1", 0}} {
		ok, err := s.Reserve(netip.MustParseAddr(tc.addr), att(tc.id, tc.ifname), tc.set)
		if err != nil || !ok {
			t.Fatalf("Reserve(%s) = %v, %v", tc.addr, ok, err)
		}
		data, err := os.ReadFile(filepath.Join(dir, tc.addr))
		if err != nil {
			t.Fatal(err)
		}
		if want := tc.id + "\r\n" + tc.ifname; string(data) != want {
			t.Errorf("lease %s holds %q, want %q", tc.addr, data, want)
		}
		last, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("last_reserved_ip.%d", tc.set)))
		if err != nil || string(last) != tc.addr {
			t.Errorf("last_reserved_ip.%d = %q, %v; want %s", tc.set, last, err, tc.addr)
		}
	}
	if ok, err := s.Reserve(netip.MustParseAddr("10.1.0.2"), att("ctr-c", "eth0"), 0); ok || err != nil {
		t.Errorf("second Reserve of a leased address = %v, %v; want false, nil", ok, err)
	}
	for path, mode := range map[string]os.FileMode{dataDir: 0o700, dir: 0o700, filepath.Join(dir, "10.1.0.2"): 0o600,
		filepath.Join(dir, "last_reserved_ip.0"): 0o600, filepath.Join(dir, "lock"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	leases, err := s.Leases()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range leases {
		got = append(got, l.String())
	}
	slices.Sort(got)
	want := []string{"10.1.0.2 (ctr-a/eth0)", "10.1.0.3 (ctr-b/net1)", "fd01::2 (ctr-a/eth0)"}
	if !slices.Equal(got, want) {
		t.Errorf("Leases = %v, want %v", got, want)
	}
	if a, ok := s.LastReserved(1); !ok || a.String() != "fd01::2" {
		t.Errorf("LastReserved(1) = %s %v", a, ok)
	}
	if _, ok := s.LastReserved(7); ok {
		t.Error("LastReserved of a set never used")
	}
	released, err := s.ReleaseAttachment(att("ctr-a", "eth0"))
	if err != nil || len(released) != 2 {
		t.Errorf("ReleaseAttachment = %v, %v; want both of ctr-a's", released, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "10.1.0.3")); err != nil {
		t.Errorf("ctr-b's lease went too: %v", err)
	}
	if released, err := s.ReleaseAttachment(att("ctr-a", "eth0")); err != nil || len(released) != 0 {
		t.Errorf("second release = %v, %v", released, err)
	}
}

func TestStoreKeepsExistingDirMode(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "n")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	openStore(t, dataDir, "n").Close()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
		t.Errorf("existing dir mode changed to %v", fi.Mode().Perm())
	}
}

// Leases written by host-local before it recorded interface names hold the container ID alone.
func TestStoreLegacyLeases(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "n")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"10.2.0.2": "ctr-old", "10.2.0.3": "ctr-old\n", "10.2.0.4": "ctr-new\r\neth0", "10.2.0.5": "ctr-new",
		"not-an-ip": "ctr-old", "last_reserved_ip.0": "10.2.0.4",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, dataDir, "n")
	defer s.Close()
	leases, err := s.Leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 4 {
		t.Fatalf("Leases = %v, want the 4 address files", leases)
	}
	for _, l := range leases {
		if want := l.Addr.String() != "10.2.0.4"; l.Legacy() != want {
			t.Errorf("%s Legacy = %v", l, l.Legacy())
		}
		if l.Legacy() && !l.OwnedBy(att(l.ContainerID, "eth7")) {
			t.Errorf("legacy %s not owned by any interface of its container", l)
		}
		if l.Legacy() && l.HeldBy(att(l.ContainerID, "eth7")) {
			t.Errorf("legacy %s held exactly", l)
		}
	}
	// ctr-new holds 10.2.0.4 exactly, so only that goes, not its legacy 10.2.0.5 (the reference's rule).
	released, err := s.ReleaseAttachment(att("ctr-new", "eth0"))
	if err != nil || len(released) != 1 || released[0].Addr.String() != "10.2.0.4" {
		t.Errorf("release ctr-new = %v, %v", released, err)
	}
	// ctr-old holds nothing exactly: its legacy leases go, whatever the ifname.
	released, err = s.ReleaseAttachment(att("ctr-old", "eth1"))
	if err != nil || len(released) != 2 {
		t.Errorf("release ctr-old = %v, %v", released, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "not-an-ip")); err != nil {
		t.Errorf("a non-lease file was touched: %v", err)
	}
}

func TestStoreRefusesSymlinks(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "n")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "10.3.0.2")); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dataDir, "n")
	if ok, err := s.Reserve(netip.MustParseAddr("10.3.0.2"), att("c", "eth0"), 0); ok || err != nil {
		t.Errorf("Reserve over a symlink = %v, %v; want false, nil", ok, err)
	}
	if leases, _ := s.Leases(); len(leases) != 0 {
		t.Errorf("a symlink listed as a lease: %v", leases)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "last_reserved_ip.0")); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Reserve(netip.MustParseAddr("10.3.0.3"), att("c", "eth0"), 0); ok || err == nil {
		t.Errorf("Reserve with a symlinked last_reserved_ip = %v, %v; want an error", ok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "10.3.0.3")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Reserve left its lease: %v", err)
	}
	s.Close()
	if data, _ := os.ReadFile(victim); string(data) != "keep" {
		t.Errorf("symlink target written: %q", data)
	}
	if err := os.Remove(filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenStore(dataDir, "n"); err == nil {
		s.Close()
		t.Error("OpenStore followed a symlinked lock file")
	}
}

func TestOpenExistingStore(t *testing.T) {
	dataDir := t.TempDir()
	s, err := OpenExistingStore(dataDir, "missing")
	if s != nil || err != nil {
		t.Fatalf("OpenExistingStore of a missing network = %v, %v; want nil, nil", s, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenExistingStore created the directory")
	}
	file := filepath.Join(dataDir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenExistingStore(file, "n"); s != nil || err != nil {
		t.Errorf("OpenExistingStore under a regular file = %v, %v; want nil, nil", s, err)
	}
	openStore(t, dataDir, "there").Close()
	s, err = OpenExistingStore(dataDir, "there")
	if s == nil || err != nil {
		t.Fatalf("OpenExistingStore of an existing network = %v, %v", s, err)
	}
	s.Close()
}

func TestStoreNotWritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenStore(filepath.Join(file, "networks"), "n"); err == nil {
		s.Close()
		t.Error("OpenStore under a regular file succeeded")
	}
	dataDir := t.TempDir()
	s := openStore(t, dataDir, "n")
	defer s.Close()
	if err := s.CheckWritable(); err != nil {
		t.Errorf("CheckWritable on a fresh dir: %v", err)
	}
	if ents, _ := os.ReadDir(s.Dir()); len(ents) != 1 {
		t.Errorf("CheckWritable left files: %v", ents)
	}
	if os.Geteuid() == 0 {
		return // root writes through mode bits; the integration test covers a read-only mount
	}
	if err := os.Chmod(s.Dir(), 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(s.Dir(), 0o700)
	if err := s.CheckWritable(); err == nil {
		t.Error("CheckWritable on a read-only dir succeeded")
	}
}

func TestAllocateNextSkipsUnlistedFiles(t *testing.T) {
	dataDir := t.TempDir()
	s := openStore(t, dataDir, "n")
	defer s.Close()
	// A lease written after Leases was listed (as by a process that skips the lock).
	if err := os.WriteFile(filepath.Join(s.Dir(), "10.4.0.2"), []byte("x\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	set := mkSet("10.4.0.0/29")
	a, err := s.AllocateNext(set, 0, att("c", "eth0"), func(netip.Addr) bool { return false })
	if err != nil || a.String() != "10.4.0.3" {
		t.Fatalf("AllocateNext = %s, %v", a, err)
	}
	a, err = s.AllocateNext(set, 0, att("d", "eth0"), func(x netip.Addr) bool { return x.String() == "10.4.0.3" })
	if err != nil || a.String() != "10.4.0.4" {
		t.Fatalf("round robin after 10.4.0.3 = %s, %v", a, err)
	}
	full := func(x netip.Addr) bool { return true }
	_, err = s.AllocateNext(set, 3, att("e", "eth0"), full)
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.SetIdx != 3 || ex.Size != 5 || !strings.Contains(err.Error(), "10.4.0.0/29") {
		t.Errorf("full set: %v", err)
	}
}

// allocate is one ADD's worth of work on its own Store, as each plugin process does.
func allocate(dataDir, network string, set RangeSet, a conf.Attachment, inside *atomic.Int32) (netip.Addr, error) {
	s, err := OpenStore(dataDir, network)
	if err != nil {
		return netip.Addr{}, err
	}
	defer s.Close()
	if inside != nil {
		if n := inside.Add(1); n != 1 {
			return netip.Addr{}, fmt.Errorf("%d holders of the lock at once", n)
		}
		defer inside.Add(-1)
	}
	leases, err := s.Leases()
	if err != nil {
		return netip.Addr{}, err
	}
	taken := map[netip.Addr]bool{}
	for _, l := range leases {
		taken[l.Addr] = true
	}
	return s.AllocateNext(set, 0, a, func(x netip.Addr) bool { return taken[x] })
}

// Many Store instances (each its own open file, so its own flock) allocating at once get distinct
// addresses, and never two hold the lock together.
func TestStoreConcurrentStores(t *testing.T) {
	const workers = 40
	dataDir := t.TempDir()
	set := mkSet("10.5.0.0/26") // 61 usable
	var inside atomic.Int32
	got := make([]netip.Addr, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { got[i], errs[i] = allocate(dataDir, "n", set, att(fmt.Sprintf("ctr-%d", i), "eth0"), &inside) })
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
		if j, dup := seen[got[i]]; dup {
			t.Errorf("workers %d and %d both got %s", j, i, got[i])
		}
		seen[got[i]] = i
	}
	checkLeaseFiles(t, filepath.Join(dataDir, "n"), workers)
}

func checkLeaseFiles(t *testing.T, dir string, want int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			n++
		}
	}
	if n != want {
		t.Errorf("%d lease files, want %d", n, want)
	}
}

// helperEnv makes the test binary, re-run, act as one allocating process.
const helperEnv = "NETLOOM_IPAM_TEST_HELPER"

func TestStoreHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper for TestStoreConcurrentProcesses")
	}
	dataDir, id, _ := strings.Cut(spec, ",")
	a, err := allocate(dataDir, "n", mkSet("10.6.0.0/26"), att(id, "eth0"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ADDR %s\n", a)
}

// Separate processes exclude each other through the flock, as concurrent plugin runs do.
func TestStoreConcurrentProcesses(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("inside a helper")
	}
	const procs = 16
	dataDir := t.TempDir()
	out := make([]string, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestStoreHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,ctr-%d", helperEnv, dataDir, i))
			b, err := cmd.CombinedOutput()
			out[i], errs[i] = string(b), err
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i := range procs {
		if errs[i] != nil {
			t.Fatalf("process %d: %v: %s", i, errs[i], out[i])
		}
		_, rest, ok := strings.Cut(out[i], "ADDR ")
		if !ok {
			t.Fatalf("process %d printed %q", i, out[i])
		}
		a := strings.Fields(rest)[0]
		if j, dup := seen[a]; dup {
			t.Errorf("processes %d and %d both got %s", j, i, a)
		}
		seen[a] = i
	}
	checkLeaseFiles(t, filepath.Join(dataDir, "n"), procs)
}

// TestStoreRefusesSymlinkedNetworkDir: a symbolic link planted as the network's directory is not written
// through (MkdirAll would follow it).
func TestStoreRefusesSymlinkedNetworkDir(t *testing.T) {
	dataDir, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dataDir, "n")); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenStore(dataDir, "n"); err == nil {
		s.Close()
		t.Fatal("OpenStore followed a symlinked network directory")
	}
	if s, err := OpenExistingStore(dataDir, "n"); err == nil && s != nil {
		s.Close()
		t.Fatal("OpenExistingStore followed a symlinked network directory")
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("files written through the link: %v", ents)
	}
}
