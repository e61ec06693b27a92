package ipam

import (
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseLease(f *testing.F) {
	for _, s := range []string{"ctr-a\r\neth0", "ctr-a", "ctr-a\n", "  ctr-a \r\n net1 \r\n", "\r\n", "", "a\nb\nc",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\neth0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := parseLease(data)
		if l.ContainerID != strings.TrimSpace(l.ContainerID) || l.IfName != strings.TrimSpace(l.IfName) {
			t.Fatalf("parseLease(%q) = %q/%q: not trimmed", data, l.ContainerID, l.IfName)
		}
		if strings.Contains(l.ContainerID, "\n") {
			t.Fatalf("parseLease(%q): container ID %q spans lines", data, l.ContainerID)
		}
		// What Reserve writes reads back as the same attachment.
		id, ifname, _ := strings.Cut(string(data), "\x00")
		id, ifname = strings.TrimSpace(id), strings.TrimSpace(ifname)
		if id == "" || strings.ContainsAny(id, "\r\n") || strings.ContainsAny(ifname, "\r\n") {
			return
		}
		if got := parseLease([]byte(id + LineBreak + ifname)); got.ContainerID != id || got.IfName != ifname {
			t.Fatalf("lease of %q/%q reads back as %q/%q", id, ifname, got.ContainerID, got.IfName)
		}
	})
}

// FuzzLeaseFiles reads lease and last-reserved files of arbitrary content through a real store in a
// temporary directory.
func FuzzLeaseFiles(f *testing.F) {
	f.Add("10.1.0.2", []byte("ctr-a\r\neth0"), []byte("10.1.0.2"))
	f.Add("fd01::2", []byte("ctr-a"), []byte("fd01::2\n"))
	f.Add("::ffff:10.1.0.3", []byte(""), []byte("::ffff:10.1.0.3"))
	f.Add("lock", []byte("x"), []byte("garbage"))
	f.Add("fe80::1%eth0", []byte("ctr\r\n"), []byte(strings.Repeat("9", 5000)))
	f.Fuzz(func(t *testing.T, name string, lease, last []byte) {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 200 || name == LockFile {
			return
		}
		dir := t.TempDir()
		s, err := OpenStore(dir, "net1")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := os.WriteFile(filepath.Join(s.Dir(), name), lease, 0o600); err != nil {
			return // a name this file system refuses
		}
		if err := os.WriteFile(filepath.Join(s.Dir(), LastReservedPrefix+"0"), last, 0o600); err != nil {
			t.Fatal(err)
		}
		leases, err := s.Leases()
		if err != nil {
			t.Fatal(err)
		}
		_, parseErr := netip.ParseAddr(name)
		if (parseErr == nil) != (len(leases) == 1) || len(leases) > 1 {
			t.Fatalf("file %q: %d leases", name, len(leases))
		}
		for _, l := range leases {
			want := parseLease(lease[:min(len(lease), maxLeaseFile)])
			if l.ContainerID != want.ContainerID || l.IfName != want.IfName || l.Addr.Is4In6() || !l.Addr.IsValid() {
				t.Fatalf("lease %q holding %q read as %+v", name, lease, l)
			}
			_ = l.String()
			if err := s.Release(l); err != nil {
				t.Fatalf("Release(%v): %v", l, err)
			}
		}
		if a, ok := s.LastReserved(0); ok && (!a.IsValid() || a.Is4In6()) {
			t.Fatalf("last reserved %q read as %s", last, a)
		}
	})
}

// fuzzRange builds a range as host-local's parser would accept it, or reports false.
func fuzzRange(subnet, start, end, gw string) (Range, bool) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil || p != p.Masked() || p.Addr().Zone() != "" || p.Addr().BitLen()-p.Bits() < 2 {
		return Range{}, false
	}
	r := Range{Subnet: p, Start: FirstHost(p), End: LastHost(p), Gateway: FirstHost(p)}
	for _, kv := range []struct {
		s   string
		dst *netip.Addr
	}{{start, &r.Start}, {end, &r.End}, {gw, &r.Gateway}} {
		if kv.s == "" {
			continue
		}
		a, err := netip.ParseAddr(kv.s)
		if err != nil || !p.Contains(a) {
			return Range{}, false
		}
		*kv.dst = a
	}
	return r, r.Start.Compare(r.End) <= 0
}

func bigAddr(a netip.Addr) *big.Int { b := a.As16(); return new(big.Int).SetBytes(b[:]) }

func FuzzRangeSet(f *testing.F) {
	f.Add("10.0.0.0/24", "", "", "", "", "", "", "", "10.0.0.7", "10.0.0.1,10.0.0.2")
	f.Add("10.10.0.0/16", "10.10.1.20", "10.10.3.50", "10.10.0.254", "10.11.0.0/30", "", "", "10.11.0.2", "10.11.0.1", "10.10.3.50")
	f.Add("fd00::/64", "", "", "", "fd01::/126", "fd01::1", "fd01::1", "fd01::1", "fd00::ffff:ffff:ffff:ffff", "fd00::1")
	f.Add("10.0.0.0/30", "10.0.0.1", "10.0.0.2", "10.0.0.2", "", "", "", "", "::ffff:10.0.0.1", "10.0.0.1")
	f.Add("::/0", "", "", "", "", "", "", "", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::1,::2")
	f.Fuzz(func(t *testing.T, sub1, start1, end1, gw1, sub2, start2, end2, gw2, probe, taken string) {
		r1, ok := fuzzRange(sub1, start1, end1, gw1)
		if !ok {
			return
		}
		set := RangeSet{r1}
		if r2, ok := fuzzRange(sub2, start2, end2, gw2); ok && r2.Start.BitLen() == r1.Start.BitLen() && !r2.Overlaps(r1) {
			set = append(set, r2)
		}
		if a, err := netip.ParseAddr(probe); err == nil {
			u := a.Unmap()
			want := false
			for _, r := range set {
				want = want || (u.BitLen() == r.Start.BitLen() && r.Start.Compare(u) <= 0 && u.Compare(r.End) <= 0)
			}
			if set.Contains(a) != want {
				t.Fatalf("%s Contains(%s) = %v", set, a, !want)
			}
		}
		// Size against arbitrary-precision arithmetic, saturating at MaxUint64.
		total := new(big.Int)
		for _, r := range set {
			n := new(big.Int).Sub(bigAddr(r.End), bigAddr(r.Start))
			n.Add(n, big.NewInt(1))
			if r.Contains(r.Gateway) {
				n.Sub(n, big.NewInt(1))
			}
			total.Add(total, n)
		}
		want := ^uint64(0)
		if total.IsUint64() {
			want = total.Uint64()
		}
		// Range.Size saturates per range before the gateway is subtracted, so a saturated range may
		// report one less than MaxUint64; either is "too many to count".
		if got := set.Size(); got != want && !(want == ^uint64(0) && got >= ^uint64(0)-uint64(len(set))) {
			t.Fatalf("%s Size() = %d, want %d", set, got, want)
		}
		takenSet := map[netip.Addr]bool{}
		for s := range strings.SplitSeq(taken, ",") {
			if a, err := netip.ParseAddr(s); err == nil && len(takenSet) < 64 {
				takenSet[a] = true
			}
		}
		var leased []netip.Addr
		for a := range takenSet {
			leased = append(leased, a)
		}
		if n := set.Leased(leased); n > uint64(len(leased)) {
			t.Fatalf("Leased counts %d of %d addresses", n, len(leased))
		}
		last, _ := netip.ParseAddr(probe)
		a, ri, ok := set.Pick(last, func(a netip.Addr) bool { return takenSet[a] })
		if !ok {
			if free := total.Int64() - int64(set.Leased(leased)); total.IsInt64() && free > 0 {
				t.Fatalf("%s: Pick found nothing with %d free", set, free)
			}
			return
		}
		if ri < 0 || ri >= len(set) || !set[ri].Contains(a) || a == set[ri].Gateway || takenSet[a] {
			t.Fatalf("%s: Pick(%s) = %s in range %d, not a free address", set, last, a, ri)
		}
		_ = set.String()
	})
}
