package neigh

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

func TestString(t *testing.T) {
	mac := net.HardwareAddr{0x0e, 0x4c, 10, 77, 1, 12}
	if got := (Entry{IP: netip.MustParseAddr("fd00::1"), MAC: mac}).String(); got != "fd00::1 lladdr 0e:4c:0a:4d:01:0c" {
		t.Errorf("Entry.String() = %q", got)
	}
	if got := (FDB{MAC: mac, Dst: netip.MustParseAddr("10.77.1.12")}).String(); got != "0e:4c:0a:4d:01:0c dst 10.77.1.12" {
		t.Errorf("FDB.String() = %q", got)
	}
}

// TestRoot drives every function on a VXLAN device in a fresh namespace: replace, list, replace with
// another MAC, remove, and remove again (already absent is fine).
func TestRoot(t *testing.T) {
	harness.RequireRoot(t)
	ns := harness.NewNetNS(t, "neigh")
	ns.Run(t, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
	ns.Run(t, "ip", "addr", "add", "10.77.1.11/24", "dev", "ul0")
	ns.Run(t, "ip", "link", "set", "ul0", "up")
	ns.Run(t, "ip", "link", "add", "vx0", "type", "vxlan", "id", "5", "local", "10.77.1.11", "dev", "ul0", "dstport", "4789", "nolearning")
	ns.Run(t, "ip", "link", "set", "vx0", "up")
	// Learned (not permanent) entries are not netloom's and must not be listed.
	ns.Run(t, "ip", "neigh", "add", "10.77.9.9", "lladdr", "02:00:00:00:09:09", "dev", "vx0", "nud", "reachable")

	macA, macB := net.HardwareAddr{0x0e, 0x4c, 10, 77, 1, 12}, net.HardwareAddr{0x0a, 0, 0, 0, 0, 0x13}
	v4, v6 := netip.MustParseAddr("10.77.1.12"), netip.MustParseAddr("fd00:10:244:2::")
	peer := netip.MustParseAddr("10.77.1.12")
	err := ns.Do(func() error {
		l, err := netlink.LinkByName("vx0")
		if err != nil {
			return err
		}
		show := func() (ns, fdb []string) {
			t.Helper()
			es, err := Permanent(l)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				ns = append(ns, e.String())
			}
			fs, err := ListFDB(l)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				fdb = append(fdb, f.String())
			}
			slices.Sort(ns)
			slices.Sort(fdb)
			return ns, fdb
		}
		expect := func(wantN, wantF []string) {
			t.Helper()
			n, f := show()
			if !slices.Equal(n, wantN) || !slices.Equal(f, wantF) {
				t.Errorf("neighbours %q fdb %q; want %q and %q", n, f, wantN, wantF)
			}
		}

		expect(nil, nil)
		for _, e := range []Entry{{v4, macA}, {v6, macA}} {
			if err := Replace(l, e); err != nil {
				return err
			}
		}
		if err := ReplaceFDB(l, FDB{macA, peer}); err != nil {
			return err
		}
		expect([]string{"10.77.1.12 lladdr 0e:4c:0a:4d:01:0c", "fd00:10:244:2:: lladdr 0e:4c:0a:4d:01:0c"}, []string{"0e:4c:0a:4d:01:0c dst 10.77.1.12"})

		// Replace is idempotent and replaces the MAC of an existing entry.
		if err := Replace(l, Entry{v4, macB}); err != nil {
			return err
		}
		if err := Replace(l, Entry{v4, macB}); err != nil {
			return err
		}
		if err := ReplaceFDB(l, FDB{macA, netip.MustParseAddr("10.77.1.13")}); err != nil {
			return err
		}
		expect([]string{"10.77.1.12 lladdr 0a:00:00:00:00:13", "fd00:10:244:2:: lladdr 0e:4c:0a:4d:01:0c"}, []string{"0e:4c:0a:4d:01:0c dst 10.77.1.13"})

		for range 2 {
			if err := Remove(l, v4); err != nil {
				return err
			}
			if err := Remove(l, v6); err != nil {
				return err
			}
			if err := RemoveFDB(l, FDB{macA, netip.MustParseAddr("10.77.1.13")}); err != nil {
				return err
			}
		}
		expect(nil, nil)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
