package doctor

import (
	"encoding/json"
	"fmt"
	"strings"
)

// nftRuleset is the part of `nft -j list ruleset` the doctor reads.
type nftRuleset struct {
	Nftables []struct {
		Chain *nftChain `json:"chain"`
		Rule  *nftRule  `json:"rule"`
	} `json:"nftables"`
}

type nftChain struct {
	Family, Table, Name, Hook, Policy string
}

type nftRule struct {
	Family, Table, Chain string
	Expr                 []map[string]json.RawMessage
}

// nftGates reads the base chains on the forward hook of `nft -j list ruleset`. The ip and ip6 "filter"
// tables holding a FORWARD chain are iptables-nft's, read through iptables-nft-save instead.
func nftGates(js []byte) ([]gate, error) {
	var rs nftRuleset
	if err := json.Unmarshal(js, &rs); err != nil {
		return nil, fmt.Errorf("nft -j list ruleset: %w", err)
	}
	rules := map[[3]string][]nftRule{}
	for _, o := range rs.Nftables {
		if r := o.Rule; r != nil {
			k := [3]string{r.Family, r.Table, r.Chain}
			rules[k] = append(rules[k], *r)
		}
	}
	var out []gate
	for _, o := range rs.Nftables {
		c := o.Chain
		if c == nil || c.Hook != "forward" || (c.Family != "ip" && c.Family != "ip6" && c.Family != "inet") {
			continue
		}
		if c.Table == "filter" && c.Name == "FORWARD" && c.Family != "inet" {
			continue
		}
		g := gate{Name: fmt.Sprintf("nft %s %s %s", c.Family, c.Table, c.Name),
			Fam4: c.Family != "ip6", Fam6: c.Family != "ip",
			fixFmt: fmt.Sprintf("nft insert rule %s %s %s %%[2]s saddr %%[1]s accept; nft insert rule %s %s %s %%[2]s daddr %%[1]s accept",
				c.Family, c.Table, c.Name, c.Family, c.Table, c.Name)}
		key := [3]string{c.Family, c.Table, c.Name}
		if c.Policy == "drop" {
			g.DropBy = "policy"
		}
		for i, r := range rules[key] {
			if conds, verdict, _, other := nftConds(r.Expr); len(conds) == 0 && !other && (verdict == "drop" || verdict == "reject") {
				g.DropBy = fmt.Sprintf("chain %s rule %d: %s", c.Name, i+1, verdict)
				rules[key] = rules[key][:i]
				break
			}
		}
		g.Accepts = nftAccepts(rules, key, nil, 0)
		out = append(out, g)
	}
	return out, nil
}

func nftAccepts(rules map[[3]string][]nftRule, chain [3]string, path []cond, depth int) []acceptRule {
	if depth > maxJumpDepth {
		return nil
	}
	var out []acceptRule
	for i, r := range rules[chain] {
		conds, verdict, target, other := nftConds(r.Expr)
		conds = append(append([]cond(nil), path...), conds...)
		switch {
		case verdict == "accept":
			out = append(out, acceptRule{Text: fmt.Sprintf("chain %s rule %d: %s", chain[2], i+1, nftText(conds, other)), Conds: conds, Other: other})
		case (verdict == "jump" || verdict == "goto") && !other:
			out = append(out, nftAccepts(rules, [3]string{chain[0], chain[1], target}, conds, depth+1)...)
		}
	}
	return out
}

// nftText renders an accepting rule's conditions as nft writes them.
func nftText(conds []cond, other bool) string {
	var words []string
	for _, c := range conds {
		switch c.Kind {
		case "src", "dst":
			kw := "ip"
			if strings.Contains(c.Value, ":") {
				kw = "ip6"
			}
			words = append(words, kw, map[string]string{"src": "saddr", "dst": "daddr"}[c.Kind], c.Value)
		case "in":
			words = append(words, "iifname", c.Value)
		case "out":
			words = append(words, "oifname", c.Value)
		}
	}
	if other {
		words = append(words, "...")
	}
	return strings.Join(append(words, "accept"), " ")
}

// nftConds reads a rule's JSON expressions.
func nftConds(exprs []map[string]json.RawMessage) (conds []cond, verdict, target string, other bool) {
	for _, e := range exprs {
		switch {
		case e["accept"] != nil:
			verdict = "accept"
		case e["drop"] != nil:
			verdict = "drop"
		case e["reject"] != nil:
			verdict = "reject"
		case e["jump"] != nil || e["goto"] != nil:
			var j struct{ Target string }
			raw := e["jump"]
			verdict = "jump"
			if raw == nil {
				raw, verdict = e["goto"], "goto"
			}
			_ = json.Unmarshal(raw, &j)
			target = j.Target
		case e["counter"] != nil, e["comment"] != nil:
		case e["match"] != nil:
			c, ok := nftMatch(e["match"])
			if ok {
				conds = append(conds, c)
			} else {
				other = true
			}
		default:
			other = true
		}
	}
	return conds, verdict, target, other
}

// nftMatch reads "ip saddr PREFIX", "ip6 daddr ADDR", "iifname NAME" and "oifname NAME" equality matches.
func nftMatch(raw json.RawMessage) (cond, bool) {
	var m struct {
		Op   string
		Left struct {
			Payload *struct{ Protocol, Field string }
			Meta    *struct{ Key string }
		}
		Right json.RawMessage
	}
	if json.Unmarshal(raw, &m) != nil || m.Op != "==" {
		return cond{}, false
	}
	var s string
	var pfx struct {
		Prefix *struct {
			Addr string
			Len  int
		}
	}
	switch {
	case json.Unmarshal(m.Right, &s) == nil:
	case json.Unmarshal(m.Right, &pfx) == nil && pfx.Prefix != nil:
		s = fmt.Sprintf("%s/%d", pfx.Prefix.Addr, pfx.Prefix.Len)
	default:
		return cond{}, false
	}
	switch {
	case m.Left.Payload != nil && m.Left.Payload.Field == "saddr":
		return cond{"src", s}, true
	case m.Left.Payload != nil && m.Left.Payload.Field == "daddr":
		return cond{"dst", s}, true
	case m.Left.Meta != nil && m.Left.Meta.Key == "iifname":
		return cond{"in", s}, true
	case m.Left.Meta != nil && m.Left.Meta.Key == "oifname":
		return cond{"out", s}, true
	}
	return cond{}, false
}
