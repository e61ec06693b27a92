package nftables

import (
	"fmt"
	"slices"
	"strings"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"

	"github.com/netloom/netloom/pkg/firewall/nftexpr"
	"github.com/netloom/netloom/pkg/portmap"
)

// checkSkeleton compares the installed chains and rules, expression by expression, with the skeleton.
// The hook rules are only required to exist per family and to jump to hostports: their conditions are
// node-wide, the last ADD's, and may be another network's.
func checkSkeleton(lens []masqLen) ([]string, error) {
	c, err := nft.New()
	if err != nil {
		return nil, err
	}
	chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	have := map[string]*nft.Chain{}
	for _, ch := range chains {
		if ch.Table.Name == TableName {
			have[ch.Name] = ch
		}
	}
	var out []string
	rules, chainList := skeletonRules(portmap.Options{}), chainDefs()
	for _, l := range lens {
		rules = append(rules, l.rule())
		chainList = append(chainList, l.chainDef())
	}
	for _, want := range chainList {
		ch, ok := have[want.name]
		if !ok {
			out = append(out, fmt.Sprintf("chain %s %s is missing", TableName, want.name))
			continue
		}
		if got, exp := hookOf(ch), wantHook(want); got != exp {
			out = append(out, fmt.Sprintf("chain %s is %q, want %q", want.name, got, exp))
		}
		installed, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("list chain %s: %w", want.name, err)
		}
		loose := want.name == chainPrerouting || want.name == chainOutput
		var got []string
		for _, r := range installed {
			got = append(got, describeRule(ruleComment(r), r.Exprs, loose))
		}
		for _, r := range rules {
			if r.chain != want.name {
				continue
			}
			if d := describeRule(r.comment, r.exprs, loose); !slices.Contains(got, d) {
				out = append(out, fmt.Sprintf("chain %s lacks rule %s", want.name, d))
			}
		}
	}
	return out, nil
}

func ruleComment(r *nft.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

// describeRule renders a rule for comparison; loosely, a prerouting or output rule as its family and
// target only.
func describeRule(comment string, exprs []expr.Any, loose bool) string {
	if loose {
		fam, _, _ := strings.Cut(comment, ",")
		last := ""
		if len(exprs) > 0 {
			last = nftexpr.Describe(exprs[len(exprs)-1:])
		}
		return fmt.Sprintf("%q ... %s", fam, last)
	}
	return fmt.Sprintf("%q %s", comment, nftexpr.Describe(exprs))
}

func hookOf(ch *nft.Chain) string {
	if ch.Hooknum == nil || ch.Priority == nil {
		return "regular"
	}
	return fmt.Sprintf("type %s hook %d priority %d", ch.Type, *ch.Hooknum, *ch.Priority)
}

func wantHook(ch chainDef) string {
	if !ch.hooked {
		return "regular"
	}
	return fmt.Sprintf("type %s hook %d priority %d", nft.ChainTypeNAT, ch.hook, ch.priority)
}
