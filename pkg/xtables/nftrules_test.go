package xtables

import (
	"errors"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/nftnl/expr"
)

// TestNFTRule: the masquerade layout's rules encode as iptables-nft writes them (TestRootAddChain
// holds the encoding to iptables-nft-restore's in the kernel); anything else is refused, so the caller
// restores it with iptables.
func TestNFTRule(t *testing.T) {
	for _, c := range []struct {
		f    Family
		rule Rule
		want string // expr.Describe, or "" for refused
	}{
		{IPv4, Rule{"-d", "10.9.0.0/24", "-m", "comment", "--comment", "x", "-j", "ACCEPT"},
			"[ payload load 3b @ base 1 + 16 => reg 1 ][ cmp eq reg 1 0a0900 ][ match name comment rev 0 info 78" +
				strings.Repeat("00", 255) + " ][ *expr.Counter &{Bytes:0 Packets:0} ][ verdict 1  ]"},
		{IPv4, Rule{"!", "-d", "224.0.0.0/4", "-j", "MASQUERADE"},
			"[ payload load 4b @ base 1 + 16 => reg 1 ][ bitwise reg 1 = ( reg 1 & f0000000 ) ^ 00000000 ][ cmp neq reg 1 e0000000 ]" +
				"[ *expr.Counter &{Bytes:0 Packets:0} ][ target name MASQUERADE rev 0 info 01" + strings.Repeat("00", 23) + " ]"},
		{IPv4, Rule{"-s", "10.9.0.5/32", "-j", "CNI-A"},
			"[ payload load 4b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0a090005 ][ *expr.Counter &{Bytes:0 Packets:0} ][ verdict -3 CNI-A ]"},
		{IPv6, Rule{"!", "-d", "ff00::/8", "-j", "MASQUERADE"},
			"[ payload load 1b @ base 1 + 24 => reg 1 ][ cmp neq reg 1 ff ][ *expr.Counter &{Bytes:0 Packets:0} ][ target name MASQUERADE rev 0 info " + strings.Repeat("00", 40) + " ]"},
		{IPv6, Rule{"-s", "fd00::5/128", "-d", "fd00::/60", "-j", "ACCEPT"},
			"[ payload load 16b @ base 1 + 8 => reg 1 ][ cmp eq reg 1 fd000000000000000000000000000005 ]" +
				"[ payload load 16b @ base 1 + 24 => reg 1 ][ bitwise reg 1 = ( reg 1 & fffffffffffffff00000000000000000 ) ^ 00000000000000000000000000000000 ]" +
				"[ cmp eq reg 1 fd000000000000000000000000000000 ][ *expr.Counter &{Bytes:0 Packets:0} ][ verdict 1  ]"},
		// Refused: what the subset does not hold.
		{IPv4, Rule{"-p", "tcp", "-j", "ACCEPT"}, ""},
		{IPv4, Rule{"-d", "10.9.0.0/24"}, ""},                          // no target
		{IPv4, Rule{"-d", "10.9.0.1/24", "-j", "ACCEPT"}, ""},          // not a prefix's address
		{IPv4, Rule{"-d", "fd00::/64", "-j", "ACCEPT"}, ""},            // the other family
		{IPv4, Rule{"-d", "0.0.0.0/0", "-j", "ACCEPT"}, ""},            // iptables prints no match
		{IPv4, Rule{"-j", "DNAT", "--to-destination", "10.0.0.1"}, ""}, // options after the target
		{IPv4, Rule{"!", "-m", "comment", "--comment", "x", "-j", "ACCEPT"}, ""},
		{IPv4, Rule{"-m", "comment", "--comment", strings.Repeat("c", 256), "-j", "ACCEPT"}, ""},
		{IPv4, Rule{"-s", "10.0.0.1/32", "-s", "10.0.0.2/32", "-j", "ACCEPT"}, ""},
		{IPv4, Rule{"-m", "comment", "--comment", "a\x00b", "-j", "ACCEPT"}, ""}, // iptables would cut it there
	} {
		exprs, err := nftRule(c.f, c.rule)
		switch {
		case c.want == "" && !errors.Is(err, errNotEncodable):
			t.Errorf("%v %q: encoded as %s (%v), want refused", c.f, c.rule, expr.Describe(exprs), err)
		case c.want != "" && (err != nil || expr.Describe(exprs) != c.want):
			t.Errorf("%v %q:\n got %s (%v)\nwant %s", c.f, c.rule, expr.Describe(exprs), err, c.want)
		}
	}
}

// FuzzNFTRule: any rule encodes or is refused as not encodable, never a panic; what encodes ends in a
// counter and a verdict or target, and re-encodes the same.
func FuzzNFTRule(f *testing.F) {
	f.Add("-d 10.9.0.0/24 -m comment --comment x -j ACCEPT", false)
	f.Add("! -d ff00::/8 -j MASQUERADE", true)
	f.Add("-s 10.9.0.5/32 -j CNI-A", false)
	f.Fuzz(func(t *testing.T, line string, v6 bool) {
		fam := IPv4
		if v6 {
			fam = IPv6
		}
		r := Rule(strings.Fields(line))
		exprs, err := nftRule(fam, r)
		if err != nil {
			if !errors.Is(err, errNotEncodable) {
				t.Fatalf("%q: %v", r, err)
			}
			return
		}
		if n := len(exprs); n < 2 {
			t.Fatalf("%q: %s", r, expr.Describe(exprs))
		}
		if _, ok := exprs[len(exprs)-2].(*expr.Counter); !ok {
			t.Fatalf("%q: no counter before the target: %s", r, expr.Describe(exprs))
		}
		again, err := expr.ParseList(expr.AppendList(nil, exprs))
		if err != nil || expr.Describe(again) != expr.Describe(exprs) {
			t.Fatalf("%q: %s re-encodes as %s (%v)", r, expr.Describe(exprs), expr.Describe(again), err)
		}
	})
}
