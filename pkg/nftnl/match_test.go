package nftnl

import (
	"net/netip"
	"testing"

	"github.com/netloom/netloom/pkg/nftnl/expr"
)

// The expected texts are what `nft --debug=netlink` prints for the rule text, in expr.Describe's
// notation (base 1 is the network header, meta key 15 is nfproto).
func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    []expr.Any
		want string
	}{
		{"meta nfproto ipv4", MatchFamily(true), "[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ]"},
		{"meta nfproto ipv6", MatchFamily(false), "[ meta load 15 => reg 1 ][ cmp eq reg 1 0a ]"},
		{"ip saddr 10.244.1.0/24", MatchSaddr(netip.MustParsePrefix("10.244.1.0/24"), expr.CmpOpEq),
			"[ payload load 3b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0af401 ]"},
		{"ip daddr != 10.244.0.0/16", MatchDaddr(netip.MustParsePrefix("10.244.0.0/16"), expr.CmpOpNeq),
			"[ payload load 2b @ base 1 + 16 => reg 1 ][ cmp neq reg 1 0af4 ]"},
		{"ip daddr != 10.240.0.0/12", MatchDaddr(netip.MustParsePrefix("10.240.0.0/12"), expr.CmpOpNeq),
			"[ payload load 4b @ base 1 + 16 => reg 1 ][ bitwise reg 1 = ( reg 1 & fff00000 ) ^ 00000000 ][ cmp neq reg 1 0af00000 ]"},
		{"ip saddr 10.1.2.5 (a host)", MatchSaddr(netip.MustParsePrefix("10.1.2.5/32"), expr.CmpOpEq),
			"[ payload load 4b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0a010205 ]"},
		{"ip daddr != 0.0.0.0/0", MatchDaddr(netip.MustParsePrefix("0.0.0.0/0"), expr.CmpOpNeq),
			"[ payload load 4b @ base 1 + 16 => reg 1 ][ bitwise reg 1 = ( reg 1 & 00000000 ) ^ 00000000 ][ cmp neq reg 1 00000000 ]"},
		{"unmasked prefix: its network", MatchSaddr(netip.MustParsePrefix("10.1.2.5/24"), expr.CmpOpEq),
			"[ payload load 3b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0a0102 ]"},
		{"ip6 saddr fd44:0:0:1::/64", MatchSaddr(netip.MustParsePrefix("fd44:0:0:1::/64"), expr.CmpOpEq),
			"[ payload load 8b @ base 1 + 8 => reg 1 ][ cmp eq reg 1 fd44000000000001 ]"},
		{"ip6 daddr != fd44::/47", MatchDaddr(netip.MustParsePrefix("fd44::/47"), expr.CmpOpNeq),
			"[ payload load 16b @ base 1 + 24 => reg 1 ][ bitwise reg 1 = ( reg 1 & fffffffffffe00000000000000000000 ) ^ 00000000000000000000000000000000 ]" +
				"[ cmp neq reg 1 fd440000000000000000000000000000 ]"},
	} {
		if got := expr.Describe(tc.e); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}
