package nftables

import (
	"fmt"
	"slices"
	"strings"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/portmap"
)

// checkSkeleton compares the installed chains and rules, expression by expression, with the skeleton
// plus the chains of lens, from one listing of the chains and one of the rules. The hook rules are only
// required to exist per family and to jump to hostports: their conditions are node-wide, the last
// ADD's, and may be another network's.
func checkSkeleton(c *nftnl.Conn, lens []masqLen) ([]string, error) {
	t := table()
	chains, err := c.Chains(t)
	if err != nil {
		return nil, err
	}
	installed, err := c.Rules(t, "")
	if err != nil {
		return nil, err
	}
	want, wantChains := skeletonRules(portmap.Options{}), chainDefs()
	for _, l := range lens {
		want = append(want, l.rule())
		wantChains = append(wantChains, l.chainDef())
	}
	var out []string
	for _, ch := range wantChains {
		problem, found := t.ChainProblem(chains, ch)
		if problem != "" {
			out = append(out, problem)
		}
		if !found {
			continue
		}
		lacked, err := lackedRules(ch.Name, installed, want)
		if err != nil {
			return nil, err
		}
		out = append(out, lacked...)
	}
	return out, nil
}

// lackedRules says which rules of want for chain the installed rules lack.
func lackedRules(chain string, installed []nftnl.Rule, want []ruleDef) ([]string, error) {
	loose := chain == chainPrerouting || chain == chainOutput
	var got, out []string
	for _, r := range installed {
		if r.Chain != chain {
			continue
		}
		exprs, err := r.Expressions()
		if err != nil {
			return nil, err
		}
		got = append(got, describeRule(r.Comment, exprs, loose))
	}
	for _, r := range want {
		if r.chain != chain {
			continue
		}
		if d := describeRule(r.comment, r.exprs, loose); !slices.Contains(got, d) {
			out = append(out, fmt.Sprintf("chain %s lacks rule %s", chain, d))
		}
	}
	return out, nil
}

// describeRule renders a rule for comparison; loosely, a prerouting or output rule as its family and
// target only.
func describeRule(comment string, exprs []expr.Any, loose bool) string {
	if loose {
		fam, _, _ := strings.Cut(comment, ",")
		last := ""
		if len(exprs) > 0 {
			last = expr.Describe(exprs[len(exprs)-1:])
		}
		return fmt.Sprintf("%q ... %s", fam, last)
	}
	return fmt.Sprintf("%q %s", comment, expr.Describe(exprs))
}
