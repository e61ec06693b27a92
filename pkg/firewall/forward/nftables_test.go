package forward

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
)

// whats lists what each message of a transaction does.
func whats(msgs []nftnl.Msg) string {
	var out []string
	for _, m := range msgs {
		w := m.What
		if m.Type == unix.NFT_MSG_NEWCHAIN && m.Flags&unix.NLM_F_EXCL == 0 {
			w += " (not exclusive)"
		}
		out = append(out, w)
	}
	return strings.Join(out, "\n")
}

func TestNFTEnsure(t *testing.T) {
	pod := podRulesFor(addrs("10.88.0.5"))
	full := nftState{chains: nftChains(), rules: append(nftPrefix(), pod...)}
	noPrefix := nftState{chains: nftChains(), rules: pod}
	adminPolicy := nftState{chains: []nftnl.Chain{{Name: nftForward, Hook: nftChains()[3].Hook}}}
	for _, tc := range []struct {
		name  string
		state nftState
		want  []nftnl.Rule
		msgs  string
	}{
		{"fresh node", nftState{}, pod, `add table cni_firewall
add chain admin
add chain isolation-stage-2
add chain isolation-stage-1
add chain forward
insert rule "CNI firewall plugin admin overrides" first in forward
insert rule "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" first in forward
add rule "10.88.0.5/32" to forward
add rule "10.88.0.5/32" to forward`},
		{"all there", full, pod, ``},
		{"jumps gone", noPrefix, pod, `add table cni_firewall
insert rule "CNI firewall plugin admin overrides" first in forward
insert rule "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" first in forward`},
		// The administrator made the forward chain (with policy drop): it is not added again.
		{"forward chain made by the administrator", adminPolicy, nil, `add table cni_firewall
add chain admin
add chain isolation-stage-2
add chain isolation-stage-1
insert rule "CNI firewall plugin admin overrides" first in forward
insert rule "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" first in forward`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := nftEnsure(tc.state, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got := whats(msgs); got != tc.msgs {
				t.Errorf("transaction:\n%s\nwant:\n%s", got, tc.msgs)
			}
		})
	}
}

// The expressions are the ones nft compiles for the rule text in the package documentation (as
// `nft --debug=netlink` shows them), so `nft list` prints them as that text.
func TestNFTRuleExpressions(t *testing.T) {
	r := nftPodRules(netip.MustParseAddr("10.88.0.5"))
	for i, want := range []string{
		"[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ][ payload load 4b @ base 1 + 16 => reg 1 ][ cmp eq reg 1 0a580005 ]" +
			"[ ct load 0 => reg 1 ][ bitwise reg 1 = ( reg 1 & 06000000 ) ^ 00000000 ][ cmp neq reg 1 00000000 ][ verdict 1  ]",
		"[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ][ payload load 4b @ base 1 + 12 => reg 1 ][ cmp eq reg 1 0a580005 ][ verdict 1  ]",
	} {
		if got := expr.Describe(r[i].Exprs); got != want {
			t.Errorf("rule %d:\n%s\nwant\n%s", i, got, want)
		}
	}
	v6 := nftPodRules(netip.MustParseAddr("fd00::5"))
	if got := expr.Describe(v6[1].Exprs); !strings.Contains(got, "cmp eq reg 1 0a ][ payload load 16b @ base 1 + 8") {
		t.Errorf("IPv6 outbound rule: %s", got)
	}
	iso := nftIsolation("cni0", true)
	if len(iso) != 3 || iso[0].Comment != "isolated cni0" || iso[1].Comment != "same-bridge cni0" || iso[2].Chain != nftStage2 {
		t.Errorf("isolation rules: %+v", iso)
	}
	if got := expr.Describe(iso[2].Exprs); got != "[ meta load 7 => reg 1 ][ cmp eq reg 1 636e6930000000000000000000000000 ][ verdict 0  ]" {
		t.Errorf("stage-2 drop: %s", got)
	}
}
