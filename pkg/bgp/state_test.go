package bgp

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
)

func record(id, ifName, prefix string) Record {
	return Record{
		Speaker: "unix:///run/netloom/netloomd.sock", ContainerID: id, IfName: ifName,
		Announcements: []Announcement{{Prefix: netip.MustParsePrefix(prefix), Communities: []uint32{65000<<16 | 1}}},
	}
}

func openStore(t *testing.T, stateDir, network string) *Store {
	t.Helper()
	s, err := OpenStore(stateDir, network)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sortedIDs(rs []Record) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ContainerID+"."+r.IfName)
	}
	slices.Sort(ids)
	return ids
}

func TestStoreWriteReadRemove(t *testing.T) {
	s := openStore(t, t.TempDir(), "pods")
	if _, ok, err := s.Read("c1", "eth0"); ok || err != nil {
		t.Fatalf("Read of a missing record: ok %v, err %v; want false, nil", ok, err)
	}
	r1 := record("c1", "eth0", "10.244.1.5/32")
	if err := s.Write(r1); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Read("c1", "eth0")
	if err != nil || !ok || !reflect.DeepEqual(got, r1) {
		t.Fatalf("Read = %+v, %v, %v; want %+v", got, ok, err, r1)
	}
	// Write replaces the attachment's record.
	r2 := record("c1", "eth0", "fd00:1::5/128")
	r2.Announcements = append(r2.Announcements, Announcement{Prefix: netip.MustParsePrefix("10.244.1.6/32"), NextHop: netip.MustParseAddr("10.77.1.11")})
	if err := s.Write(r2); err != nil {
		t.Fatal(err)
	}
	got, ok, err = s.Read("c1", "eth0")
	if err != nil || !ok || !reflect.DeepEqual(got, r2) {
		t.Fatalf("Read after replace = %+v, %v, %v; want %+v", got, ok, err, r2)
	}
	if _, err := os.Lstat(filepath.Join(s.dir, ".c1.eth0.tmp")); !os.IsNotExist(err) {
		t.Errorf("Write left its temporary file: %v", err)
	}
	if err := s.Remove("c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Read("c1", "eth0"); ok || err != nil {
		t.Fatalf("Read after Remove: ok %v, err %v", ok, err)
	}
	if err := s.Remove("c1", "eth0"); err != nil {
		t.Errorf("Remove of an absent record: %v", err)
	}
}

func TestStoreModes(t *testing.T) {
	// Umask 0: the modes must come from the store, not from a friendly umask. Not parallel: the umask
	// is the process's.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	stateDir := filepath.Join(t.TempDir(), "state", "bgp") // parents made by OpenStore as well
	s := openStore(t, stateDir, "pods")
	if err := s.Write(record("c1", "eth0", "10.244.1.5/32")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{stateDir, os.ModeDir | 0o700},
		{filepath.Join(stateDir, "pods"), os.ModeDir | 0o700},
		{filepath.Join(stateDir, "pods", "c1.eth0"), 0o600},
	} {
		st, err := os.Lstat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != tc.want {
			t.Errorf("%s: mode %v, want %v", tc.path, st.Mode(), tc.want)
		}
	}
}

func TestStoreSymlinks(t *testing.T) {
	outside := t.TempDir()
	target := filepath.Join(outside, "target")
	valid := `{"speaker":"x","containerID":"c1","ifName":"eth0","announcements":[]}`

	for _, tc := range []struct {
		name string
		// plant puts a symbolic link (to target) somewhere under the store for attachment c1/eth0.
		plant     func(s *Store) string
		op        string // "read" or "write"
		wantErr   bool
		wantFinal bool // after the op the record path is a regular file
	}{
		{name: "Read does not follow a link at the record", op: "read", wantErr: true,
			plant: func(s *Store) string { return s.path("c1", "eth0") }},
		{name: "Write replaces a link at the record, not its target", op: "write", wantFinal: true,
			plant: func(s *Store) string { return s.path("c1", "eth0") }},
		{name: "Write does not follow a link at the temporary file", op: "write", wantErr: true,
			plant: func(s *Store) string { return filepath.Join(s.dir, ".c1.eth0.tmp") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(target, []byte(valid), 0o600); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, t.TempDir(), "pods")
			if err := os.Symlink(target, tc.plant(s)); err != nil {
				t.Fatal(err)
			}
			var err error
			switch tc.op {
			case "read":
				var ok bool
				_, ok, err = s.Read("c1", "eth0")
				if ok {
					t.Error("Read returned a record through a symbolic link")
				}
			case "write":
				err = s.Write(record("c1", "eth0", "10.244.1.5/32"))
				if err != nil && conf.Code(err) != 5 {
					t.Errorf("Write error %v has code %d, want 5 (I/O)", err, conf.Code(err))
				}
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if b, _ := os.ReadFile(target); string(b) != valid {
				t.Errorf("the link's target changed: %q", b)
			}
			if tc.wantFinal {
				st, err := os.Lstat(s.path("c1", "eth0"))
				if err != nil || !st.Mode().IsRegular() {
					t.Errorf("record path after Write: %v, %v; want a regular file", st, err)
				}
				if r, ok, err := s.Read("c1", "eth0"); !ok || err != nil || r.Announcements[0].Prefix.String() != "10.244.1.5/32" {
					t.Errorf("Read after Write = %+v, %v, %v", r, ok, err)
				}
			}
		})
	}
}

func TestStoreReadNotRegular(t *testing.T) {
	s := openStore(t, t.TempDir(), "pods")
	// A FIFO must neither block Read nor pass for a record.
	if err := syscall.Mkfifo(s.path("c1", "eth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Read("c1", "eth0"); ok || err == nil {
		t.Errorf("Read of a FIFO: ok %v, err %v; want an error", ok, err)
	}
	if err := os.Mkdir(s.path("c2", "eth0"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Read("c2", "eth0"); ok || err == nil {
		t.Errorf("Read of a directory: ok %v, err %v; want an error", ok, err)
	}
}

func TestStoreAll(t *testing.T) {
	s := openStore(t, t.TempDir(), "pods")
	for _, r := range []Record{record("c1", "eth0", "10.244.1.5/32"), record("c2", "eth0", "10.244.1.6/32"), record("c2", "net1", "fd00:1::6/128")} {
		if err := s.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Dir(s.path("x", "y"))
	other := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(other, []byte(`{"containerID":"evil","ifName":"eth0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	skipped := []struct {
		what string
		make func(path string) error
	}{
		{".c3.eth0.tmp", func(p string) error { return os.WriteFile(p, []byte(`{"containerID":"tmp"}`), 0o600) }},
		{"c4.eth0", func(p string) error { return os.Symlink(other, p) }},
		{"c5.eth0", func(p string) error { return os.Mkdir(p, 0o700) }},
		{"c6.eth0", func(p string) error { return syscall.Mkfifo(p, 0o600) }},
	}
	for _, sk := range skipped {
		if err := sk.make(filepath.Join(dir, sk.what)); err != nil {
			t.Fatal(err)
		}
	}
	bad := []string{"c7.eth0"}
	if err := os.WriteFile(filepath.Join(dir, "c7.eth0"), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root reads a mode 000 file anyway
		if err := os.WriteFile(filepath.Join(dir, "c8.eth0"), []byte("{}"), 0); err != nil {
			t.Fatal(err)
		}
		bad = append(bad, "c8.eth0")
	}

	// An interface called "tmp" is a record like any other (its file ends in ".tmp").
	if err := s.Write(record("c9", "tmp", "10.244.1.9/32")); err != nil {
		t.Fatal(err)
	}
	records, errs := s.All()
	if got, want := sortedIDs(records), []string{"c1.eth0", "c2.eth0", "c2.net1", "c9.tmp"}; !slices.Equal(got, want) {
		t.Errorf("All returned %v, want %v", got, want)
	}
	if len(errs) != len(bad) {
		t.Errorf("All reported %d errors %v, want one each for %v", len(errs), errs, bad)
	}
	for _, b := range bad {
		if !slices.ContainsFunc(errs, func(e error) bool { return strings.Contains(e.Error(), b) }) {
			t.Errorf("no error names %s: %v", b, errs)
		}
	}
}

func TestAllNetworks(t *testing.T) {
	stateDir := t.TempDir()
	pods, other := openStore(t, stateDir, "pods"), openStore(t, stateDir, "other")
	for _, w := range []struct {
		s *Store
		r Record
	}{
		{pods, record("c1", "eth0", "10.244.1.5/32")},
		{pods, record("c2", "eth0", "10.244.1.6/32")},
		{other, record("c3", "net1", "10.245.0.3/32")},
	} {
		if err := w.s.Write(w.r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(stateDir, "stray"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "other", "c9.eth0"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	records, errs := AllNetworks(stateDir)
	if got, want := sortedIDs(records), []string{"c1.eth0", "c2.eth0", "c3.net1"}; !slices.Equal(got, want) {
		t.Errorf("AllNetworks returned %v, want %v", got, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "c9.eth0") {
		t.Errorf("errs %v, want one naming c9.eth0", errs)
	}

	records, errs = AllNetworks(filepath.Join(stateDir, "missing"))
	if len(records) != 0 || len(errs) != 0 {
		t.Errorf("missing state dir: %v, %v; want nothing", records, errs)
	}
}

func TestOpenStoreRefuses(t *testing.T) {
	stateDir := t.TempDir()
	file := filepath.Join(stateDir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A symbolic link planted as a network's directory is not written through.
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(stateDir, "linked")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stateDir, network string
		code              uint
	}{
		{stateDir, "", 7},
		{stateDir, ".", 7},
		{stateDir, "..", 7},
		{stateDir, "a/b", 7},
		{stateDir, "a\x00b", 7},
		{file, "pods", 5},       // the state directory is a file
		{stateDir, "linked", 5}, // the network's directory is a symbolic link
	} {
		t.Run(tc.network, func(t *testing.T) {
			s, err := OpenStore(tc.stateDir, tc.network)
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("OpenStore(%q, %q) = %v, %v; want code %d", tc.stateDir, tc.network, s, err, tc.code)
			}
		})
	}
	if ents, _ := os.ReadDir(stateDir); len(ents) != 2 {
		t.Errorf("refused names created something: %v", ents)
	}
}
