package nftables

import (
	"fmt"
	"slices"
	"strings"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"

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
			last = describe(exprs[len(exprs)-1:])
		}
		return fmt.Sprintf("%q ... %s", fam, last)
	}
	return fmt.Sprintf("%q %s", comment, describe(exprs))
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

// describe renders exprs one per bracket, like `nft --debug=netlink`, so rules read back from the kernel
// compare with the ones built here, and tests read as text.
func describe(exprs []expr.Any) string {
	var b strings.Builder
	for _, e := range exprs {
		b.WriteString("[ ")
		switch e := e.(type) {
		case *expr.Meta:
			fmt.Fprintf(&b, "meta load %d => reg %d", e.Key, e.Register)
		case *expr.Payload:
			fmt.Fprintf(&b, "payload load %db @ base %d + %d => reg %d", e.Len, e.Base, e.Offset, e.DestRegister)
		case *expr.Bitwise:
			fmt.Fprintf(&b, "bitwise reg %d = ( reg %d & %x ) ^ %x", e.DestRegister, e.SourceRegister, e.Mask, e.Xor)
		case *expr.Cmp:
			op := map[expr.CmpOp]string{expr.CmpOpEq: "eq", expr.CmpOpNeq: "neq"}[e.Op]
			fmt.Fprintf(&b, "cmp %s reg %d %x", op, e.Register, e.Data)
		case *expr.Ct:
			fmt.Fprintf(&b, "ct load %d => reg %d", e.Key, e.Register)
		case *expr.Fib:
			fmt.Fprintf(&b, "fib daddr=%t type=%t => reg %d", e.FlagDADDR, e.ResultADDRTYPE, e.Register)
		case *expr.Lookup:
			fmt.Fprintf(&b, "lookup reg %d set %s", e.SourceRegister, e.SetName)
			if e.IsDestRegSet {
				fmt.Fprintf(&b, " dreg %d", e.DestRegister)
			}
		case *expr.NAT:
			// The kernel adds range flags of its own; the registers say all.
			fmt.Fprintf(&b, "nat %d family %d addr_min reg %d proto_min reg %d", e.Type, e.Family, e.RegAddrMin, e.RegProtoMin)
		case *expr.Masq:
			b.WriteString("masq")
		case *expr.Verdict:
			fmt.Fprintf(&b, "verdict %d %s", e.Kind, e.Chain)
		default:
			fmt.Fprintf(&b, "%T %+v", e, e)
		}
		b.WriteString(" ]")
	}
	return b.String()
}
