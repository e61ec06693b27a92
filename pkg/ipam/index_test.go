package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// leaseAddrs is the addresses of leases, sorted.
func leaseAddrs(ls []Lease) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Addr.String())
	}
	slices.Sort(out)
	return out
}

// owned opens the store, asks for a's leases, closes it, and says whether the lease files were read.
func owned(t *testing.T, dataDir string, a string) ([]string, bool) {
	t.Helper()
	s := openStore(t, dataDir, "net")
	defer s.Close()
	ls, err := s.OwnedLeases(att(a, "eth0"))
	if err != nil {
		t.Fatal(err)
	}
	return leaseAddrs(ls), s.scans > 0
}

func reserve(t *testing.T, dataDir, a, addr string) {
	t.Helper()
	s := openStore(t, dataDir, "net")
	defer s.Close()
	if ok, err := s.Reserve(netip.MustParseAddr(addr), att(a, "eth0"), 0); err != nil || !ok {
		t.Fatalf("reserve %s for %s: %v %v", addr, a, ok, err)
	}
}

// TestIndexServesWithoutScans: once built, the index answers every later call without reading the
// lease files, across processes (stores), while netloom alone changes the directory.
func TestIndexServesWithoutScans(t *testing.T) {
	dataDir := t.TempDir()
	for i := range 50 {
		reserve(t, dataDir, fmt.Sprintf("c%d", i), fmt.Sprintf("10.0.0.%d", i+2))
	}
	if got, _ := owned(t, dataDir, "c7"); !slices.Equal(got, []string{"10.0.0.9"}) {
		t.Fatalf("c7 owns %v", got)
	}
	for i := range 20 {
		got, scanned := owned(t, dataDir, fmt.Sprintf("c%d", i))
		if scanned || !slices.Equal(got, []string{fmt.Sprintf("10.0.0.%d", i+2)}) {
			t.Fatalf("c%d: %v, scanned %v", i, got, scanned)
		}
	}
	// A release and a new lease are recorded: still no scan, and the answers follow.
	s := openStore(t, dataDir, "net")
	released, err := s.ReleaseAttachment(att("c3", "eth0"))
	if err != nil || len(released) != 1 {
		t.Fatalf("release: %v %v", released, err)
	}
	if ok, _ := s.Reserve(netip.MustParseAddr("10.0.0.200"), att("c3", "eth0"), 0); !ok {
		t.Fatal("reserve")
	}
	if s.scans > 0 {
		t.Error("release and reserve read every lease")
	}
	s.Close()
	if got, scanned := owned(t, dataDir, "c3"); scanned || !slices.Equal(got, []string{"10.0.0.200"}) {
		t.Errorf("c3 after release and reserve: %v, scanned %v", got, scanned)
	}
}

// TestIndexNeverTrustedOverFiles: whatever changes the directory behind netloom's back is seen: a lease
// the reference (or a person) writes or removes right after a netloom operation, a lease file edited in
// place, a lease the index cannot hold.
func TestIndexNeverTrustedOverFiles(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "net")
	reserve(t, dataDir, "a", "10.0.0.2")
	owned(t, dataDir, "a") // builds the index

	// Written by another program at once after netloom's Close: the same clock tick as netloom's
	// last change, which a comparison of mtimes alone would miss.
	reserve(t, dataDir, "a", "10.0.0.3")
	if err := os.WriteFile(filepath.Join(dir, "10.0.0.4"), []byte("b\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, scanned := owned(t, dataDir, "b"); !scanned || !slices.Equal(got, []string{"10.0.0.4"}) {
		t.Errorf("a lease written by another program: %v, scanned %v", got, scanned)
	}
	if err := os.Remove(filepath.Join(dir, "10.0.0.3")); err != nil {
		t.Fatal(err)
	}
	if got, scanned := owned(t, dataDir, "a"); !scanned || !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("a lease removed by another program: %v, scanned %v", got, scanned)
	}

	// Edited in place: the directory's mtime does not move, the file read back disagrees.
	owned(t, dataDir, "a")
	if err := os.WriteFile(filepath.Join(dir, "10.0.0.2"), []byte("c\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := owned(t, dataDir, "a"); len(got) != 0 {
		t.Errorf("a still owns %v after its file was given to c", got)
	}
	if got, _ := owned(t, dataDir, "c"); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("c owns %v", got)
	}

	// A container ID with a tab cannot go on an index line: no index, every call reads the files.
	if err := os.WriteFile(filepath.Join(dir, "10.0.0.9"), []byte("we\tird\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, scanned := owned(t, dataDir, "c"); !scanned || !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("with an unindexable lease: %v, scanned %v", got, scanned)
	}
	if _, err := os.Stat(filepath.Join(dir, IndexFile)); !os.IsNotExist(err) {
		t.Errorf("an index was kept beside an unindexable lease: %v", err)
	}
	if got, scanned := owned(t, dataDir, "we\tird"); !scanned || !slices.Equal(got, []string{"10.0.0.9"}) {
		t.Errorf("the unindexable lease: %v, scanned %v", got, scanned)
	}
}

// TestIndexStaysSmall: a node that churns pods for long keeps an index the size of its live leases.
func TestIndexStaysSmall(t *testing.T) {
	dataDir := t.TempDir()
	s := openStore(t, dataDir, "net")
	if _, err := s.OwnedLeases(att("x", "eth0")); err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("10.0.0.2")
	for i := range 3 * compactAfter {
		if ok, err := s.Reserve(a, att(fmt.Sprint("p", i), "eth0"), 0); err != nil || !ok {
			t.Fatalf("reserve %d: %v", i, err)
		}
		if _, err := s.ReleaseAttachment(att(fmt.Sprint("p", i), "eth0")); err != nil {
			t.Fatal(err)
		}
		if i%(compactAfter/2) == 0 { // a new process now and then: compaction happens on load
			s.Close()
			s = openStore(t, dataDir, "net")
			if _, err := s.OwnedLeases(att("x", "eth0")); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Close()
	st, err := os.Stat(filepath.Join(dataDir, "net", IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if max := int64(2*compactAfter+compactAfter/2) * 64; st.Size() > max {
		t.Errorf("index of no live lease after %d churns is %d bytes (more than %d)", 3*compactAfter, st.Size(), max)
	}
	if got, _ := owned(t, dataDir, "p5"); len(got) != 0 {
		t.Errorf("a released lease is still owned: %v", got)
	}
}

// TestIndexAgreesWithFiles: random leases and releases over many processes (stores), with compactions
// on the way; after each, every container's leases from the index are exactly those a full read of
// the files finds.
func TestIndexAgreesWithFiles(t *testing.T) {
	dataDir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := []string{"a", "ab", "abc", "b", "ba", "c1", "c10", "c2", "z", "legacy"}
	for round := range 60 {
		s := openStore(t, dataDir, "net")
		for range 50 {
			id := ids[rng.IntN(len(ids))]
			ifname := []string{"eth0", "net1"}[rng.IntN(2)]
			if rng.IntN(3) == 0 {
				if _, err := s.ReleaseAttachment(att(id, ifname)); err != nil {
					t.Fatal(err)
				}
				continue
			}
			addr := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(4)), byte(2 + rng.IntN(200))})
			if _, err := s.Reserve(addr, att(id, ifname), 0); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		if round%7 == 3 { // a legacy lease written by an old plugin, behind netloom's back
			_ = os.WriteFile(filepath.Join(dataDir, "net", fmt.Sprintf("10.0.9.%d", round)), []byte("legacy"), 0o600)
		}
		s = openStore(t, dataDir, "net")
		all, err := s.Leases()
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		for _, id := range ids {
			for _, ifname := range []string{"eth0", "net1"} {
				var want []string
				for _, l := range all {
					if l.OwnedBy(att(id, ifname)) {
						want = append(want, l.Addr.String())
					}
				}
				slices.Sort(want)
				got, _ := owned(t, dataDir, id)
				if ifname != "eth0" {
					s := openStore(t, dataDir, "net")
					ls, err := s.OwnedLeases(att(id, ifname))
					s.Close()
					if err != nil {
						t.Fatal(err)
					}
					got = leaseAddrs(ls)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: %s/%s owns %v by the index, %v by the files", round, id, ifname, got, want)
				}
			}
		}
	}
}
