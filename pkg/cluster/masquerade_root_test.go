package cluster

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/test/harness"
)

// In a fresh namespace: the table is written once, read back as wanted and left alone after that,
// rewritten after an edit or deletion by hand, rewritten when the pod CIDRs change, and deleted when
// masquerade is off; nft lists it as the layout says.
func TestEnsureMasquerade(t *testing.T) {
	harness.RequireRoot(t)
	n := harness.NewNetNS(t, "masq")
	pods, cluster := prefixes("10.244.1.0/24", "fd44:0:0:1::/64"), prefixes("10.244.0.0/16", "fd44::/48")
	ensure := func(on bool, pods []string) masqChange {
		t.Helper()
		var ch masqChange
		if err := n.Do(func() (err error) { ch, err = ensureMasquerade(on, prefixes(pods...), cluster); return err }); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	podStrings := []string{pods[0].String(), pods[1].String()}

	if ch := ensure(true, podStrings); ch.Reason != "table inet netloom-cluster is missing" || ch.Rules != 2 {
		t.Fatalf("first ensure: %+v", ch)
	}
	listing := n.Run(t, "nft", "list", "table", "inet", MasqTable)
	for _, want := range []string{
		`comment "netloomd cluster: masquerade of pod traffic leaving the cluster CIDR"`,
		"type nat hook postrouting priority srcnat; policy accept;",
		`ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 masquerade comment "pods 10.244.1.0/24 leaving 10.244.0.0/16"`,
		`ip6 saddr fd44:0:0:1::/64 ip6 daddr != fd44::/48 masquerade comment "pods fd44:0:0:1::/64 leaving fd44::/48"`,
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft lists no %q:\n%s", want, listing)
		}
	}
	if ch := ensure(true, podStrings); ch.Reason != "" {
		t.Errorf("second ensure rewrote the table: %q", ch.Reason)
	}

	n.Run(t, "nft", "flush", "chain", "inet", MasqTable, masqChainName)
	if ch := ensure(true, podStrings); !strings.Contains(ch.Reason, "holds 0 rules, want 2") {
		t.Errorf("after a flush by hand: %+v", ch)
	}
	n.Run(t, "nft", "delete", "table", "inet", MasqTable)
	if ch := ensure(true, podStrings); ch.Reason != "table inet netloom-cluster is missing" {
		t.Errorf("after a deletion by hand: %+v", ch)
	}
	if got := n.Run(t, "nft", "list", "table", "inet", MasqTable); got != listing {
		t.Errorf("rewritten as\n%s\nwant\n%s", got, listing)
	}

	if ch := ensure(true, []string{"10.244.2.0/24"}); !strings.Contains(ch.Reason, "holds 2 rules, want 1") || ch.Rules != 1 {
		t.Errorf("pod CIDRs changed: %+v", ch)
	}
	if got := n.Run(t, "nft", "list", "table", "inet", MasqTable); !strings.Contains(got, "ip saddr 10.244.2.0/24 ip daddr != 10.244.0.0/16 masquerade") || strings.Contains(got, "10.244.1.0") || strings.Contains(got, "ip6") {
		t.Errorf("after the change:\n%s", got)
	}

	if ch := ensure(false, podStrings); ch.Reason == "" || ch.Rules != 0 {
		t.Errorf("masquerade off: %+v", ch)
	}
	if got := n.Run(t, "nft", "list", "ruleset"); strings.TrimSpace(got) != "" {
		t.Errorf("masquerade off left:\n%s", got)
	}
	if ch := ensure(false, podStrings); ch.Reason != "" {
		t.Errorf("masquerade off, nothing there: %+v", ch)
	}
}
