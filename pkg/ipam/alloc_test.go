package ipam

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	for _, tc := range []struct {
		name    string
		subnets []string
		leased  []string
		last    string
		want    string // "" : exhausted
	}{
		// The reference allocator's round-robin cases.
		{name: "fresh v4", subnets: []string{"10.0.0.0/29"}, want: "10.0.0.2"},
		{name: "fresh v6", subnets: []string{"2001:db8:1::/64"}, want: "2001:db8:1::2"},
		{name: "fresh /30", subnets: []string{"10.0.0.0/30"}, want: "10.0.0.2"},
		{name: "skip leased", subnets: []string{"10.0.0.0/29"}, leased: []string{"10.0.0.2"}, want: "10.0.0.3"},
		{name: "after last", subnets: []string{"10.0.0.0/29"}, last: "10.0.0.5", want: "10.0.0.6"},
		{name: "after last, skip leased", subnets: []string{"10.0.0.0/29"}, leased: []string{"10.0.0.4", "10.0.0.5"}, last: "10.0.0.3", want: "10.0.0.6"},
		{name: "wrap to start", subnets: []string{"10.0.0.0/29"}, leased: []string{"10.0.0.6"}, last: "10.0.0.5", want: "10.0.0.2"},
		{name: "last outside set", subnets: []string{"10.0.0.0/29"}, leased: []string{"10.0.0.2"}, last: "10.0.0.128", want: "10.0.0.3"},
		{name: "last is the only free", subnets: []string{"10.0.0.0/29"}, leased: []string{"10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"}, last: "10.0.0.3", want: "10.0.0.3"},
		{name: "multi ranges fresh", subnets: []string{"10.0.0.0/30", "10.0.1.0/30"}, want: "10.0.0.2"},
		{name: "advance to next range", subnets: []string{"10.0.0.0/30", "10.0.1.0/30"}, last: "10.0.0.2", want: "10.0.1.2"},
		{name: "roll to first range", subnets: []string{"10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"}, last: "10.0.2.2", want: "10.0.0.2"},
		{name: "never the broadcast", subnets: []string{"10.0.0.0/29"}, last: "10.0.0.6", leased: []string{"10.0.0.2"}, want: "10.0.0.3"},
		{name: "v6 wraps to start", subnets: []string{"fd00::/126"}, last: "fd00::3", want: "fd00::2"},
		{name: "v4-mapped last", subnets: []string{"10.0.0.0/29"}, last: "::ffff:10.0.0.5", want: "10.0.0.6"},
		// Exhaustion.
		{name: "/30 full", subnets: []string{"10.0.0.0/30"}, leased: []string{"10.0.0.2"}},
		{name: "/29 full", subnets: []string{"10.0.0.0/29"}, leased: []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}, last: "10.0.0.4"},
		{name: "v6 /126 full", subnets: []string{"fd00::/126"}, leased: []string{"fd00::2", "fd00::3"}},
		{name: "two ranges full", subnets: []string{"10.0.0.0/30", "10.0.1.0/30"}, leased: []string{"10.0.0.2", "10.0.1.2"}, last: "10.0.1.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := mkSet(tc.subnets...)
			taken := map[netip.Addr]bool{}
			for _, l := range tc.leased {
				taken[netip.MustParseAddr(l)] = true
			}
			var last netip.Addr
			if tc.last != "" {
				last = netip.MustParseAddr(tc.last)
			}
			calls := 0
			got, ri, ok := set.Pick(last, func(a netip.Addr) bool { calls++; return taken[a] })
			if tc.want == "" {
				if ok {
					t.Fatalf("Pick = %s, want exhausted", got)
				}
				if n := set.Leased(addrs(tc.leased)); n < set.Size() {
					t.Errorf("Leased = %d < Size %d for an exhausted set", n, set.Size())
				}
				return
			}
			if !ok || got.String() != tc.want {
				t.Fatalf("Pick = %s, %v; want %s", got, ok, tc.want)
			}
			if !set[ri].Contains(got) {
				t.Errorf("range index %d does not contain %s", ri, got)
			}
			if calls > len(tc.leased)+1 {
				t.Errorf("asked taken %d times for %d leases", calls, len(tc.leased))
			}
		})
	}
}

func addrs(ss []string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// A full walk of a range hands out every address but the gateway exactly once, in order.
func TestPickWalksRoundRobin(t *testing.T) {
	r := mkRange("10.0.0.0/24")
	r.Gateway = netip.MustParseAddr("10.0.0.100")
	set := RangeSet{r}
	taken := map[netip.Addr]bool{}
	var last netip.Addr
	for i := range set.Size() {
		a, _, ok := set.Pick(last, func(a netip.Addr) bool { return taken[a] })
		if !ok {
			t.Fatalf("exhausted after %d of %d", i, set.Size())
		}
		if a == r.Gateway || taken[a] {
			t.Fatalf("handed out %s (gateway or twice)", a)
		}
		if last.IsValid() && a != last.Next() && !(last.Next() == r.Gateway && a == r.Gateway.Next()) {
			t.Fatalf("after %s got %s, not the next address", last, a)
		}
		taken[a], last = true, a
	}
	if a, _, ok := set.Pick(last, func(a netip.Addr) bool { return taken[a] }); ok {
		t.Fatalf("full set handed out %s", a)
	}
}

// A huge, nearly empty IPv6 set is cheap: the walk stops at the first free address.
func TestPickLargeV6(t *testing.T) {
	set := mkSet("fd00::/64")
	last := netip.MustParseAddr("fd00::ffff:ffff:ffff:fffe")
	a, _, ok := set.Pick(last, func(netip.Addr) bool { return false })
	if !ok || a.String() != "fd00::ffff:ffff:ffff:ffff" {
		t.Fatalf("Pick = %s %v", a, ok)
	}
	a, _, ok = set.Pick(a, func(netip.Addr) bool { return false })
	if !ok || a.String() != "fd00::2" { // wraps past the gateway ::1
		t.Fatalf("Pick after the end = %s %v", a, ok)
	}
}

func TestExhaustedError(t *testing.T) {
	err := &ExhaustedError{Set: mkSet("10.213.251.0/30"), SetIdx: 0, Size: 1}
	want := "no free address in range 10.213.251.0/30 (rangeset 0): all 1 addresses are leased"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if !strings.Contains((&ExhaustedError{Set: mkSet("10.0.0.0/30", "10.0.1.0/30"), SetIdx: 2}).Error(), "10.0.0.0/30, 10.0.1.0/30 (rangeset 2)") {
		t.Error("multi-range set not named")
	}
}
