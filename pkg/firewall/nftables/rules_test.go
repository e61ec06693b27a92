package nftables

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/utils"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
)

var keyA = firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "eth0"}

func TestCommentMatchesReference(t *testing.T) {
	// The reference: hashForNetwork = MustFormatHashWithPrefix(16, "", network), hashForInstance adds
	// "-" + MustFormatHashWithPrefix(16, "", ifname+":"+containerID).
	for _, k := range []firewall.Key{keyA, {Network: `q"uo"te`, ContainerID: "x", IfName: "net1"}} {
		want := utils.MustFormatHashWithPrefix(16, "", k.Network) + "-" +
			utils.MustFormatHashWithPrefix(16, "", k.IfName+":"+k.ContainerID)
		if got := instanceHash(k); got != want {
			t.Errorf("instanceHash(%v) = %s, reference %s", k, got, want)
		}
	}
	if got, want := Comment(keyA), "d23676b4f2d9fe04-f4d01f2ef4b92245, net: mynet, if: eth0, id: c1"; got != want {
		t.Errorf("Comment = %q, want %q", got, want)
	}
	if got := Comment(firewall.Key{Network: `q"uo"te`, ContainerID: "x", IfName: "e"}); !strings.HasSuffix(got, ", net: quote, if: e, id: x") {
		t.Errorf("quotes not dropped: %q", got)
	}
	long := firewall.Key{Network: "n", ContainerID: strings.Repeat("a", 200), IfName: "eth0"}
	if got := Comment(long); len(got) != commentMax || !strings.HasPrefix(got, instanceHash(long)+", net: n, if: eth0, id: aaa") {
		t.Errorf("long comment: %d bytes %q", len(got), got)
	}
}

// The expected texts are what `nft --debug=netlink` prints for the reference's rule text, rewritten in
// describe's notation (base 1 is the network header, meta key 15 is nfproto).
func TestMasqExprs(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"10.1.2.5/24", "[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ]" +
			"[ payload load 4b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0a010205 ]" +
			"[ payload load 3b @ base 1 + 16 => reg 1 ][ cmp neq reg 1 0a0102 ][ masq ]"},
		{"10.1.2.5/20", "[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ]" +
			"[ payload load 4b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0a010205 ]" +
			"[ payload load 4b @ base 1 + 16 => reg 1 ][ bitwise reg 1 = ( reg 1 & fffff000 ) ^ 00000000 ]" +
			"[ cmp neq reg 1 0a010000 ][ masq ]"},
		{"10.1.2.5/32", "[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ]" +
			"[ payload load 4b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0a010205 ]" +
			"[ payload load 4b @ base 1 + 16 => reg 1 ][ cmp neq reg 1 0a010205 ][ masq ]"},
		{"10.1.2.5/0", "[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ]" +
			"[ payload load 4b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0a010205 ]" +
			"[ payload load 4b @ base 1 + 16 => reg 1 ][ bitwise reg 1 = ( reg 1 & 00000000 ) ^ 00000000 ]" +
			"[ cmp neq reg 1 00000000 ][ masq ]"},
		{"fd00::5/64", "[ meta load 15 => reg 1 ][ cmp eq reg 1 0a ]" +
			"[ payload load 16b @ base 1 + 8 => reg 1 ][ cmp eq reg 1 fd000000000000000000000000000005 ]" +
			"[ payload load 8b @ base 1 + 24 => reg 1 ][ cmp neq reg 1 fd00000000000000 ][ masq ]"},
	} {
		if got := expr.Describe(masqExprs(netip.MustParsePrefix(tc.addr))); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.addr, got, tc.want)
		}
	}
}

func TestPostroutingExprs(t *testing.T) {
	var got []string
	for _, e := range postroutingExprs() {
		got = append(got, expr.Describe(e))
	}
	want := []string{
		"[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ][ payload load 4b @ base 1 + 16 => reg 1 ]" +
			"[ bitwise reg 1 = ( reg 1 & f0000000 ) ^ 00000000 ][ cmp eq reg 1 e0000000 ][ return ]",
		"[ meta load 15 => reg 1 ][ cmp eq reg 1 0a ][ payload load 1b @ base 1 + 24 => reg 1 ][ cmp eq reg 1 ff ][ return ]",
		"[ goto masq_checks ]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("postrouting:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestStaleFor(t *testing.T) {
	valid := map[conf.Attachment]bool{{ContainerID: "c1", IfName: "eth0"}: true}
	stale := staleFor("mynet", valid)
	for _, tc := range []struct {
		comment string
		want    bool
	}{
		{Comment(keyA), false},
		{Comment(firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "net1"}), true},
		{Comment(firewall.Key{Network: "mynet", ContainerID: "c2", IfName: "eth0"}), true},
		{Comment(firewall.Key{Network: "other", ContainerID: "c2", IfName: "eth0"}), false},
		{networkHash("mynet") + "-", false}, // too short to name an attachment
		{"", false},
	} {
		if got := stale(tc.comment); got != tc.want {
			t.Errorf("stale(%q) = %v, want %v", tc.comment, got, tc.want)
		}
	}
}

func TestDiff(t *testing.T) {
	a := netip.MustParsePrefix("10.1.2.5/24")
	var post []string
	for _, e := range postroutingExprs() {
		post = append(post, expr.Describe(e))
	}
	hooked := []nftnl.Chain{masqChain(), postChain()}
	good := state{chains: hooked, postRules: post, masqRules: []string{expr.Describe(masqExprs(a))}}
	if d := diff([]netip.Prefix{a}, good); len(d) != 0 {
		t.Errorf("diff of a good state: %q", d)
	}
	for _, tc := range []struct {
		name string
		st   state
		want string
	}{
		{"no table", state{}, "chain cni_plugins_masquerade postrouting is missing; chain masq_checks has no masquerade rule for 10.1.2.5/24"},
		{"no goto", state{chains: hooked, postRules: post[:2], masqRules: good.masqRules}, "chain postrouting lacks [ goto masq_checks ]"},
		{"other subnet", state{chains: hooked, postRules: post,
			masqRules: []string{expr.Describe(masqExprs(netip.MustParsePrefix("10.1.2.5/16")))}}, "chain masq_checks has no masquerade rule for 10.1.2.5/24"},
		{"not hooked", state{chains: []nftnl.Chain{{Name: PostroutingName}}, postRules: post, masqRules: good.masqRules},
			`chain cni_plugins_masquerade postrouting is "regular", want "type nat hook 4 priority 100"`},
	} {
		if got := strings.Join(diff([]netip.Prefix{a}, tc.st), "; "); got != tc.want {
			t.Errorf("%s: diff = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPlan(t *testing.T) {
	a, b, c := netip.MustParsePrefix("10.1.2.5/24"), netip.MustParsePrefix("fd00::5/64"), netip.MustParsePrefix("10.1.2.9/24")
	rule := func(p netip.Prefix, h uint64) installed {
		return installed{chain: MasqChain, handle: h, exprs: expr.Describe(masqExprs(p))}
	}
	for _, tc := range []struct {
		name        string
		existing    []installed
		addrs       []netip.Prefix
		wantStale   []uint64
		wantMissing []netip.Prefix
	}{
		{"fresh", nil, []netip.Prefix{a, b}, nil, []netip.Prefix{a, b}},
		{"all there", []installed{rule(b, 1), rule(a, 2)}, []netip.Prefix{a, b}, nil, nil},
		{"address changed", []installed{rule(a, 1), rule(c, 2)}, []netip.Prefix{a, b}, []uint64{2}, []netip.Prefix{b}},
		{"duplicate rule", []installed{rule(a, 1), rule(a, 2)}, []netip.Prefix{a}, []uint64{2}, nil},
		{"prefix length changed", []installed{rule(netip.MustParsePrefix("10.1.2.5/16"), 1)}, []netip.Prefix{a}, []uint64{1}, []netip.Prefix{a}},
	} {
		stale, missing := plan(tc.existing, tc.addrs)
		var handles []uint64
		for _, r := range stale {
			handles = append(handles, r.handle)
		}
		if !slices.Equal(handles, tc.wantStale) || !slices.Equal(missing, tc.wantMissing) {
			t.Errorf("%s: stale %v missing %v; want %v %v", tc.name, handles, missing, tc.wantStale, tc.wantMissing)
		}
	}
}

func TestSkeletonIntact(t *testing.T) {
	var rules []installed
	for _, e := range postroutingExprs() {
		rules = append(rules, installed{chain: PostroutingName, exprs: expr.Describe(e)})
	}
	if !skeletonIntact(rules) {
		t.Error("the skeleton Ensure writes is not intact")
	}
	if skeletonIntact(rules[:2]) || skeletonIntact(nil) || skeletonIntact([]installed{rules[2], rules[0], rules[1]}) {
		t.Error("a partial or reordered skeleton counts as intact")
	}
}
