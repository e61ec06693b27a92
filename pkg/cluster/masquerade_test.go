package cluster

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestPlanMasquerade(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pods, cluster []netip.Prefix
		want          []string // the rules' comments
		notes         string
	}{
		{"IPv4", prefixes("10.244.1.0/24"), prefixes("10.244.0.0/16"), []string{"pods 10.244.1.0/24 leaving 10.244.0.0/16"}, ""},
		{"dual-stack", prefixes("10.244.1.0/24", "fd44:0:0:1::/64"), prefixes("10.244.0.0/16", "fd44::/48"),
			[]string{"pods 10.244.1.0/24 leaving 10.244.0.0/16", "pods fd44:0:0:1::/64 leaving fd44::/48"}, ""},
		{"dual-stack pods, IPv4 cluster CIDR only", prefixes("10.244.1.0/24", "fd44:0:0:1::/64"), prefixes("10.244.0.0/16"),
			[]string{"pods 10.244.1.0/24 leaving 10.244.0.0/16"}, "pod CIDR fd44:0:0:1::/64: no clusterCIDR of its family"},
		{"IPv6 only", prefixes("fd44:0:0:1::/64"), prefixes("10.244.0.0/16", "fd44::/48"), []string{"pods fd44:0:0:1::/64 leaving fd44::/48"}, ""},
		{"two cluster CIDRs of a family: both stay unmasqueraded", prefixes("10.244.1.0/24"), prefixes("10.244.0.0/16", "10.96.0.0/12"),
			[]string{"pods 10.244.1.0/24 leaving 10.244.0.0/16,10.96.0.0/12"}, ""},
		{"pod CIDR outside the cluster CIDR", prefixes("10.250.0.0/24"), prefixes("10.244.0.0/16"), nil, "outside clusterCIDR"},
		{"pod CIDR larger than the cluster CIDR", prefixes("10.0.0.0/8"), prefixes("10.244.0.0/16"), nil, "outside clusterCIDR"},
		{"pod CIDR equal to the cluster CIDR", prefixes("10.244.0.0/16"), prefixes("10.244.0.0/16"), []string{"pods 10.244.0.0/16 leaving 10.244.0.0/16"}, ""},
		{"no pod CIDR", nil, prefixes("10.244.0.0/16"), nil, ""},
		{"no cluster CIDR", prefixes("10.244.1.0/24"), nil, nil, "no clusterCIDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, notes := planMasquerade(tc.pods, tc.cluster)
			var got []string
			for _, r := range rules {
				got = append(got, r.comment())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("rules %q, want %q", got, tc.want)
			}
			if n := strings.Join(notes, "; "); (tc.notes == "") != (n == "") || !strings.Contains(n, tc.notes) {
				t.Errorf("notes %q, want %q", n, tc.notes)
			}
		})
	}
}

// The expected texts are what `nft --debug=netlink` prints for `ip saddr 10.244.1.0/24 ip daddr !=
// 10.244.0.0/16 masquerade` in an inet table, in expr.Describe's notation.
func TestMasqRuleExprs(t *testing.T) {
	for _, tc := range []struct {
		rule masqRule
		want string
	}{
		{masqRule{Pod: netip.MustParsePrefix("10.244.1.0/24"), Cluster: prefixes("10.244.0.0/16")},
			"[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ][ payload load 3b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0af401 ]" +
				"[ payload load 2b @ base 1 + 16 => reg 1 ][ cmp neq reg 1 0af4 ][ masq ]"},
		{masqRule{Pod: netip.MustParsePrefix("10.244.1.0/24"), Cluster: prefixes("10.244.0.0/16", "10.96.0.0/12")},
			"[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ][ payload load 3b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0af401 ]" +
				"[ payload load 2b @ base 1 + 16 => reg 1 ][ cmp neq reg 1 0af4 ]" +
				"[ payload load 4b @ base 1 + 16 => reg 1 ][ bitwise reg 1 = ( reg 1 & fff00000 ) ^ 00000000 ][ cmp neq reg 1 0a600000 ][ masq ]"},
		{masqRule{Pod: netip.MustParsePrefix("fd44:0:0:1::/64"), Cluster: prefixes("fd44::/48")},
			"[ meta load 15 => reg 1 ][ cmp eq reg 1 0a ][ payload load 8b @ base 1 + 8 => reg 1 ][ cmp eq reg 1 fd44000000000001 ]" +
				"[ payload load 6b @ base 1 + 24 => reg 1 ][ cmp neq reg 1 fd4400000000 ][ masq ]"},
	} {
		if got := expr.Describe(tc.rule.exprs()); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.rule.comment(), got, tc.want)
		}
	}
}

// installedAs is the table as the kernel would return it after writing rules.
func installedAs(rules []masqRule) masqState {
	st := masqState{chains: []nftnl.Chain{masqChain()}}
	for _, r := range rules {
		st.rules = append(st.rules, masqInstalled{chain: masqChainName, comment: r.comment(), exprs: expr.Describe(r.exprs())})
	}
	return st
}

func TestMasqDiff(t *testing.T) {
	want, _ := planMasquerade(prefixes("10.244.1.0/24", "fd44:0:0:1::/64"), prefixes("10.244.0.0/16", "fd44::/48"))
	other, _ := planMasquerade(prefixes("10.244.2.0/24", "fd44:0:0:1::/64"), prefixes("10.244.0.0/16", "fd44::/48"))
	edit := func(f func(st *masqState)) masqState {
		st := installedAs(want)
		st.chains = append([]nftnl.Chain(nil), st.chains...)
		st.rules = append([]masqInstalled(nil), st.rules...)
		f(&st)
		return st
	}
	for _, tc := range []struct {
		name string
		want []masqRule
		have masqState
		diff string // "" when the kernel matches
	}{
		{"as written", want, installedAs(want), ""},
		{"table missing", want, masqState{}, "table inet netloom-cluster is missing"},
		{"chain hooked elsewhere", want, edit(func(st *masqState) {
			st.chains[0].Hook = &nftnl.Hook{Type: "nat", Num: unix.NF_INET_PRE_ROUTING, Priority: -100}
		}),
			`chain netloom-cluster postrouting is "type nat hook 0 priority -100"`},
		{"chain renamed", want, edit(func(st *masqState) { st.chains[0].Name = "post" }), "chain netloom-cluster postrouting is missing"},
		{"a chain added by hand", want, edit(func(st *masqState) { st.chains = append(st.chains, nftnl.Chain{Name: "mine"}) }), "chain netloom-cluster mine is not the agent's"},
		{"a rule deleted", want, edit(func(st *masqState) { st.rules = st.rules[:1] }), "holds 1 rules, want 2"},
		{"a rule added", want, edit(func(st *masqState) { st.rules = append(st.rules, st.rules[0]) }), "holds 3 rules, want 2"},
		{"rules swapped", want, edit(func(st *masqState) { st.rules[0], st.rules[1] = st.rules[1], st.rules[0] }), "rule 1 of chain netloom-cluster postrouting is"},
		{"a comment changed", want, edit(func(st *masqState) { st.rules[1].comment = "x" }), `rule 2 of chain netloom-cluster postrouting is`},
		{"the pod CIDR changed", other, installedAs(want), "rule 1 of chain netloom-cluster postrouting is"},
		{"nothing wanted, nothing there", nil, masqState{}, ""},
		{"nothing wanted, the table there", nil, installedAs(want), "is there with nothing to masquerade"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := masqDiff(tc.want, tc.have)
			if (tc.diff == "") != (got == "") || !strings.Contains(got, tc.diff) {
				t.Errorf("masqDiff = %q, want %q", got, tc.diff)
			}
		})
	}
}

func TestMasqMsgs(t *testing.T) {
	want, _ := planMasquerade(prefixes("10.244.1.0/24", "fd44:0:0:1::/64"), prefixes("10.244.0.0/16", "fd44::/48"))
	for _, tc := range []struct {
		rules []masqRule
		want  string
	}{
		{want, `add table netloom-cluster; delete table netloom-cluster; add table netloom-cluster; add chain postrouting; ` +
			`add rule "pods 10.244.1.0/24 leaving 10.244.0.0/16" to postrouting; add rule "pods fd44:0:0:1::/64 leaving fd44::/48" to postrouting`},
		{nil, "add table netloom-cluster; delete table netloom-cluster"},
	} {
		msgs, err := masqMsgs(tc.rules)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range msgs {
			if m.Family != unix.NFPROTO_INET {
				t.Errorf("%s: family %d", m.What, m.Family)
			}
			got = append(got, m.What)
		}
		if s := strings.Join(got, "; "); s != tc.want {
			t.Errorf("transaction:\n got %s\nwant %s", s, tc.want)
		}
	}
}
