package shaping

import (
	"net/netip"
	"slices"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestHTBFor(t *testing.T) {
	l := Limit{RateBits: 8_000_000, BurstBits: 80_000}
	for _, tc := range []struct {
		name    string
		s       Subnets
		d       Direction
		deflt   uint16
		filters []string
	}{
		// The upstream plugin's own example: an IPv6 /68 takes three words, the last one masked.
		{"unshaped, from the pod", Subnets{List: prefixes("10.0.0.0/8", "fd00:db8:abcd:1234:e000::/68"), Exclude: true}, FromPod, ShapedClass, []string{
			"prio 16 protocol 0x0800 class 1:1 match 0a000000/ff000000 at 16",
			"prio 15 protocol 0x86dd class 1:1 match fd000db8/ffffffff at 24 match abcd1234/ffffffff at 28 match e0000000/f0000000 at 32",
		}},
		// To the pod the peer is the source.
		{"unshaped, to the pod", Subnets{List: prefixes("10.0.0.0/8", "fd00:db8:abcd:1234:e000::/68"), Exclude: true}, ToPod, ShapedClass, []string{
			"prio 16 protocol 0x0800 class 1:1 match 0a000000/ff000000 at 12",
			"prio 15 protocol 0x86dd class 1:1 match fd000db8/ffffffff at 8 match abcd1234/ffffffff at 12 match e0000000/f0000000 at 16",
		}},
		{"shaped: only these", Subnets{List: prefixes("192.168.7.0/24")}, FromPod, UnshapedClass, []string{
			"prio 16 protocol 0x0800 class 1:30 match c0a80700/ffffff00 at 16",
		}},
		// Host bits are dropped; a /0 matches every packet of its family; a /128 takes four words.
		{"edges", Subnets{List: prefixes("10.1.2.3/16", "0.0.0.0/0", "::1/128"), Exclude: true}, FromPod, ShapedClass, []string{
			"prio 16 protocol 0x0800 class 1:1 match 0a010000/ffff0000 at 16",
			"prio 16 protocol 0x0800 class 1:1",
			"prio 15 protocol 0x86dd class 1:1 match 00000000/ffffffff at 24 match 00000000/ffffffff at 28 match 00000000/ffffffff at 32 match 00000001/ffffffff at 36",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := HTBFor(l, tc.s, tc.d)
			if h.Default != tc.deflt || h.Shaped != TBFFor(l) {
				t.Errorf("default 1:%x shaped %+v, want 1:%x %+v", h.Default, h.Shaped, tc.deflt, TBFFor(l))
			}
			var got []string
			for _, m := range h.Filters {
				got = append(got, m.String())
			}
			if !slices.Equal(got, tc.filters) {
				t.Errorf("filters:\n%q\nwant\n%q", got, tc.filters)
			}
		})
	}
}
