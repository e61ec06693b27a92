package ipam

import (
	"math"
	"net/netip"
	"testing"
)

// mkRange is a range with the reference's defaults for subnet.
func mkRange(subnet string) Range {
	p := netip.MustParsePrefix(subnet)
	return Range{Subnet: p, Start: FirstHost(p), End: LastHost(p), Gateway: FirstHost(p)}
}

func mkSet(subnets ...string) RangeSet {
	var s RangeSet
	for _, sn := range subnets {
		s = append(s, mkRange(sn))
	}
	return s
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		subnet, first, last, lastAddr string
		size                          uint64
	}{
		{"10.0.0.0/24", "10.0.0.1", "10.0.0.254", "10.0.0.255", 253},
		{"10.0.0.0/30", "10.0.0.1", "10.0.0.2", "10.0.0.3", 1},
		{"10.0.0.0/29", "10.0.0.1", "10.0.0.6", "10.0.0.7", 5},
		{"10.0.0.0/8", "10.0.0.1", "10.255.255.254", "10.255.255.255", 1<<24 - 3},
		{"10.0.0.0/21", "10.0.0.1", "10.0.7.254", "10.0.7.255", 2048 - 3},
		{"fd00::/126", "fd00::1", "fd00::3", "fd00::3", 2},
		{"fd00::/120", "fd00::1", "fd00::ff", "fd00::ff", 254},
		{"fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:ffff", "fd00::ffff:ffff:ffff:ffff", math.MaxUint64 - 1},
		{"fd00::/48", "fd00::1", "fd00::ffff:ffff:ffff:ffff:ffff", "fd00::ffff:ffff:ffff:ffff:ffff", math.MaxUint64},
	} {
		t.Run(tc.subnet, func(t *testing.T) {
			p := netip.MustParsePrefix(tc.subnet)
			if got := FirstHost(p).String(); got != tc.first {
				t.Errorf("FirstHost = %s, want %s", got, tc.first)
			}
			if got := LastHost(p).String(); got != tc.last {
				t.Errorf("LastHost = %s, want %s", got, tc.last)
			}
			if got := LastAddr(p).String(); got != tc.lastAddr {
				t.Errorf("LastAddr = %s, want %s", got, tc.lastAddr)
			}
			if got := mkRange(tc.subnet).Size(); got != tc.size {
				t.Errorf("Size = %d, want %d", got, tc.size)
			}
		})
	}
}

func TestRangeContainsOverlaps(t *testing.T) {
	r := Range{Subnet: netip.MustParsePrefix("10.0.0.0/24"), Start: netip.MustParseAddr("10.0.0.10"),
		End: netip.MustParseAddr("10.0.0.20"), Gateway: netip.MustParseAddr("10.0.0.1")}
	for a, want := range map[string]bool{
		"10.0.0.9": false, "10.0.0.10": true, "10.0.0.20": true, "10.0.0.21": false,
		"::ffff:10.0.0.15": true, "fd00::10": false, "10.0.1.15": false,
	} {
		if got := r.Contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
	if got := r.Size(); got != 11 { // the gateway .1 is outside 10..20
		t.Errorf("Size = %d, want 11", got)
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/24", "10.0.0.128/25", true},
		{"10.0.0.0/25", "10.0.0.128/25", false},
		{"10.0.0.0/24", "10.0.1.0/24", false},
		{"10.0.0.0/16", "10.0.200.0/24", true},
		{"10.0.0.0/24", "fd00::/64", false},
	} {
		if got := mkRange(tc.a).Overlaps(mkRange(tc.b)); got != tc.want {
			t.Errorf("%s overlaps %s = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := mkRange(tc.b).Overlaps(mkRange(tc.a)); got != tc.want {
			t.Errorf("%s overlaps %s = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestRangeString(t *testing.T) {
	if got := mkRange("10.213.251.0/30").String(); got != "10.213.251.0/30" {
		t.Errorf("default range = %q", got)
	}
	r := mkRange("10.1.0.0/16")
	r.Start, r.End = netip.MustParseAddr("10.1.1.20"), netip.MustParseAddr("10.1.3.50")
	if got := r.String(); got != "10.1.0.0/16 (10.1.1.20-10.1.3.50)" {
		t.Errorf("narrowed range = %q", got)
	}
	if got := mkSet("10.0.0.0/30", "10.0.1.0/30").String(); got != "10.0.0.0/30, 10.0.1.0/30" {
		t.Errorf("set = %q", got)
	}
}
