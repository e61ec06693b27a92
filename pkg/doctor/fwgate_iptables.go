package doctor

import (
	"strings"

	"github.com/netloom/netloom/pkg/xtables"
)

// iptablesGate reads the FORWARD chain of an iptables-save dump of the filter table.
func iptablesGate(name, save, tool string, fam xtables.Family) (gate, error) {
	t, err := xtables.Parse(save, "filter", nil)
	if err != nil {
		return gate{}, err
	}
	g := gate{Name: name, Fam4: fam == xtables.IPv4, Fam6: fam == xtables.IPv6,
		fixFmt: tool + " -I FORWARD -s %[1]s -j ACCEPT; " + tool + " -I FORWARD -d %[1]s -j ACCEPT (or chain the firewall plugin)"}
	if iptablesPolicy(save, "FORWARD") == "DROP" {
		g.DropBy = "policy"
	}
	rules := t.Rules["FORWARD"]
	for i, r := range rules {
		if target := r.Target(); target == "DROP" || target == "REJECT" {
			if conds, other := iptablesConds(r); (len(conds) == 0 && !other) || onlyReject(r) {
				g.DropBy = "rule -A FORWARD " + r.String()
				t.Rules["FORWARD"] = rules[:i] // what follows never sees a packet
				break
			}
		}
	}
	g.Accepts = iptablesAccepts(t, "FORWARD", nil, 0)
	return g, nil
}

// onlyReject tells a rule with no match but REJECT's own option ("-j REJECT --reject-with ...").
func onlyReject(r xtables.Rule) bool {
	for i := 0; i < len(r); i++ {
		switch r[i] {
		case "-j", "--reject-with", "--comment":
			i++
		case "-m":
			if i+1 < len(r) && r[i+1] != "comment" {
				return false
			}
			i++
		default:
			return false
		}
	}
	return r.Target() == "REJECT"
}

// iptablesPolicy reads a built-in chain's policy from its ":CHAIN POLICY [counters]" line.
func iptablesPolicy(save, chain string) string {
	inFilter := false
	for line := range strings.SplitSeq(save, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "*") {
			inFilter = line == "*filter"
		}
		if f := strings.Fields(line); inFilter && len(f) >= 2 && f[0] == ":"+chain {
			return f[1]
		}
	}
	return ""
}

func iptablesAccepts(t xtables.Table, chain string, path []cond, depth int) []acceptRule {
	if depth > maxJumpDepth {
		return nil
	}
	var out []acceptRule
	for _, r := range t.Rules[chain] {
		conds, other := iptablesConds(r)
		conds = append(append([]cond(nil), path...), conds...)
		switch target := r.Target(); {
		case target == "ACCEPT":
			out = append(out, acceptRule{Text: "-A " + chain + " " + r.String(), Conds: conds, Other: other})
		case t.Chains[target] && !other:
			out = append(out, iptablesAccepts(t, target, conds, depth+1)...)
		}
	}
	return out
}

// iptablesConds reads a rule's matches; other is set by any the doctor does not judge.
func iptablesConds(r xtables.Rule) (conds []cond, other bool) {
	for i := 0; i < len(r); i++ {
		w := r[i]
		next := ""
		if i+1 < len(r) {
			next = r[i+1]
		}
		switch w {
		case "-s", "--source":
			conds, i = append(conds, cond{"src", next}), i+1
		case "-d", "--destination":
			conds, i = append(conds, cond{"dst", next}), i+1
		case "-i", "--in-interface":
			conds, i = append(conds, cond{"in", next}), i+1
		case "-o", "--out-interface":
			conds, i = append(conds, cond{"out", next}), i+1
		case "-j", "-g", "--comment":
			i++
		case "-m":
			if next != "comment" {
				other = true
			}
			i++
		default:
			other = true
		}
	}
	return conds, other
}
