package cluster

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
)

// Routed mode's masquerade, what ip-masq-agent does for kindnet: one nftables table the agent owns and
// rewrites whole, holding one rule per pod CIDR of this node that has a cluster CIDR of its family:
//
//	table inet netloom-cluster {
//		comment "netloomd cluster: masquerade of pod traffic leaving the cluster CIDR"
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 masquerade comment "pods 10.244.1.0/24 leaving 10.244.0.0/16"
//			ip6 saddr fd44:0:0:1::/64 ip6 daddr != fd44::/48 masquerade comment "pods fd44:0:0:1::/64 leaving fd44::/48"
//		}
//	}
//
// Pod-to-pod traffic, on this node or across nodes, stays inside the cluster CIDR and keeps its source.
// An inet table takes nat chains since Linux 5.2 (Debian 11's kernel is 5.10).
const (
	MasqTable      = "netloom-cluster"
	masqChainName  = "postrouting"
	masqPriority   = 100 // srcnat
	masqTableNote  = "netloomd cluster: masquerade of pod traffic leaving the cluster CIDR"
	masqCommentMax = 128 // knftables.CommentLengthMax: what nft users expect a comment to fit in
)

func masqTable() nftnl.Table { return nftnl.Table{Family: unix.NFPROTO_INET, Name: MasqTable} }

func masqChain() nftnl.Chain {
	return nftnl.Chain{Name: masqChainName, Hook: &nftnl.Hook{Type: "nat", Num: unix.NF_INET_POST_ROUTING, Priority: masqPriority}}
}

// masqRule masquerades packets from the pods of Pod to any address outside Cluster (the cluster CIDRs
// of Pod's family).
type masqRule struct {
	Pod     netip.Prefix
	Cluster []netip.Prefix
}

// planMasquerade is the table's rules for this node's pod CIDRs: one per pod CIDR inside a cluster CIDR
// of its family. notes say which pod CIDRs get none, and why.
func planMasquerade(podCIDRs, clusterCIDRs []netip.Prefix) (rules []masqRule, notes []string) {
	for _, p := range podCIDRs {
		var cluster []netip.Prefix
		inside := false
		for _, c := range clusterCIDRs {
			if c.Addr().Is4() == p.Addr().Is4() {
				cluster = append(cluster, c)
				inside = inside || (c.Bits() <= p.Bits() && c.Contains(p.Addr()))
			}
		}
		switch {
		case len(cluster) == 0:
			notes = append(notes, fmt.Sprintf("pod CIDR %s: no clusterCIDR of its family, so its pods' traffic keeps its source", p))
		case !inside:
			notes = append(notes, fmt.Sprintf("pod CIDR %s is outside clusterCIDR %v: not masqueraded", p, cluster))
		default:
			rules = append(rules, masqRule{Pod: p, Cluster: cluster})
		}
	}
	return rules, notes
}

// exprs is `ip saddr POD ip daddr != C1 [ip daddr != C2 ...] masquerade` (ip6 for IPv6).
func (r masqRule) exprs() []expr.Any {
	e := append(nftnl.MatchFamily(r.Pod.Addr().Is4()), nftnl.MatchSaddr(r.Pod, expr.CmpOpEq)...)
	for _, c := range r.Cluster {
		e = append(e, nftnl.MatchDaddr(c, expr.CmpOpNeq)...)
	}
	return append(e, &expr.Masq{})
}

// comment tells `nft list ruleset` readers what the rule is for.
func (r masqRule) comment() string {
	cs := make([]string, len(r.Cluster))
	for i, c := range r.Cluster {
		cs[i] = c.String()
	}
	s := fmt.Sprintf("pods %s leaving %s", r.Pod, strings.Join(cs, ","))
	if len(s) > masqCommentMax {
		s = s[:masqCommentMax]
	}
	return s
}

func (r masqRule) nft() nftnl.Rule {
	return nftnl.Rule{Chain: masqChainName, Comment: r.comment(), Exprs: r.exprs()}
}

// masqState is the table as read back from the kernel: its chains, and every rule (of any chain) with
// its expressions as expr.Describe text.
type masqState struct {
	chains []nftnl.Chain
	rules  []masqInstalled
}

type masqInstalled struct {
	chain, comment, exprs string
}

func (i masqInstalled) String() string { return fmt.Sprintf("%s %q", i.exprs, i.comment) }

// masqDiff says how have differs from the table that want needs, "" when it does not. Without rules the
// table is not wanted at all; a table with no chain counts as missing (it does nothing).
func masqDiff(want []masqRule, have masqState) string {
	t := masqTable()
	if len(want) == 0 {
		if len(have.chains) > 0 {
			return fmt.Sprintf("table inet %s is there with nothing to masquerade", t.Name)
		}
		return ""
	}
	if len(have.chains) == 0 {
		return fmt.Sprintf("table inet %s is missing", t.Name)
	}
	if problem, _ := t.ChainProblem(have.chains, masqChain()); problem != "" {
		return problem
	}
	for _, ch := range have.chains {
		if ch.Name != masqChainName {
			return fmt.Sprintf("chain %s %s is not the agent's", t.Name, ch.Name)
		}
	}
	if len(have.rules) != len(want) {
		return fmt.Sprintf("chain %s %s holds %d rules, want %d", t.Name, masqChainName, len(have.rules), len(want))
	}
	for i, w := range want {
		exp := masqInstalled{chain: masqChainName, comment: w.comment(), exprs: expr.Describe(w.exprs())}
		if have.rules[i] != exp {
			return fmt.Sprintf("rule %d of chain %s %s is %s, want %s", i+1, t.Name, masqChainName, have.rules[i], exp)
		}
	}
	return ""
}

// masqMsgs is the transaction that replaces the table whole with want's, or deletes it when want is
// empty; adding it first makes the deletion succeed whether it was there or not.
func masqMsgs(want []masqRule) ([]nftnl.Msg, error) {
	t := masqTable()
	var b nftnl.Batch
	b.Add(t.Add(""))
	b.Add(t.Del())
	if len(want) > 0 {
		b.Add(t.Add(masqTableNote))
		b.Add(t.AddChain(masqChain()))
		for _, r := range want {
			b.Add(t.AddRule(r.nft()))
		}
	}
	return b.Msgs()
}

// readMasq reads the table through c.
func readMasq(c *nftnl.Conn) (masqState, error) {
	var st masqState
	var err error
	if st.chains, err = c.Chains(masqTable()); err != nil {
		return st, err
	}
	rules, err := c.Rules(masqTable(), "")
	if err != nil {
		return st, err
	}
	for _, r := range rules {
		exprs, err := r.Expressions()
		if err != nil {
			return st, err
		}
		st.rules = append(st.rules, masqInstalled{chain: r.Chain, comment: r.Comment, exprs: expr.Describe(exprs)})
	}
	return st, nil
}

// masqChange is what ensureMasquerade did: Reason is empty when the kernel already matched.
type masqChange struct {
	Reason string
	Rules  int // the table's rules now
	Notes  []string
}

// ensureMasquerade makes the table in the calling thread's network namespace what podCIDRs need when
// on is set, and absent otherwise (masquerade turned off, another mode, no pod CIDR to masquerade). It
// reads the table first and writes only when it differs, in one transaction. With nothing wanted, an
// nf_tables that does not answer holds no table of ours: that is not an error.
func ensureMasquerade(on bool, podCIDRs, clusterCIDRs []netip.Prefix) (masqChange, error) {
	var ch masqChange
	var want []masqRule
	if on {
		want, ch.Notes = planMasquerade(podCIDRs, clusterCIDRs)
	}
	c, err := nftnl.Dial()
	if err != nil {
		if len(want) == 0 {
			return ch, nil
		}
		return ch, err
	}
	defer c.Close()
	have, err := readMasq(c)
	if err != nil {
		if len(want) == 0 {
			return ch, nil
		}
		return ch, fmt.Errorf("read table inet %s: %w", MasqTable, err)
	}
	ch.Rules = len(want)
	if ch.Reason = masqDiff(want, have); ch.Reason == "" {
		return ch, nil
	}
	msgs, err := masqMsgs(want)
	if err == nil {
		err = c.Transact(msgs)
	}
	if err != nil {
		return ch, fmt.Errorf("write table inet %s (%s): %w", MasqTable, ch.Reason, err)
	}
	return ch, nil
}
