package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/netloom/netloom/pkg/xtables"
)

// gate is one place that judges forwarded packets: the filter table's FORWARD chain of an iptables build
// (legacy or nf_tables) or an nftables base chain on the forward hook. A packet is forwarded only if
// every gate of its family lets it through.
type gate struct {
	Name       string // "iptables-legacy FORWARD", "nft inet mytable fw"
	Fam4, Fam6 bool
	// DropBy says what drops the packets no earlier rule accepts: "policy", or an unconditional DROP or
	// REJECT rule of the chain itself (RHEL's "-A FORWARD -j REJECT" under an ACCEPT policy); "" when
	// the chain lets them through.
	DropBy string
	// Accepts are the rules that accept, jumps followed, each with every condition on its path.
	Accepts []acceptRule
	// fixFmt renders the fix for one prefix: %[1]s the prefix, %[2]s the family's nft keyword (ip, ip6).
	fixFmt string
}

// acceptRule is an accepting rule as the conditions it needs. A condition the doctor cannot judge
// (a conntrack state, a port, a negation) makes the rule not count: it does not accept every pod packet.
type acceptRule struct {
	Text  string
	Conds []cond
	Other bool
}

// cond is one match of a rule: a source or destination prefix, an input or output interface.
type cond struct {
	Kind  string // "src", "dst", "in", "out"
	Value string
}

// accepts returns a rule of g that accepts packets of prefix p's pods, on device dev (their bridge, or
// "" for any).
func (g gate) accepts(p netip.Prefix, dev string) (string, bool) {
	for _, r := range g.Accepts {
		if !r.Other && r.matches(p, dev) {
			return r.Text, true
		}
	}
	return "", false
}

func (r acceptRule) matches(p netip.Prefix, dev string) bool {
	for _, c := range r.Conds {
		switch c.Kind {
		case "src", "dst":
			q, err := parsePrefixOrAddr(c.Value)
			if err != nil || q.Addr().Is4() != p.Addr().Is4() || !q.Overlaps(p) {
				return false
			}
		case "in", "out":
			if dev == "" || !ifaceMatches(c.Value, dev) {
				return false
			}
		}
	}
	return true
}

// ifaceMatches is iptables' and nft's interface match: exact, or a prefix with a trailing '+' or '*'.
func ifaceMatches(pattern, dev string) bool {
	if s, ok := strings.CutSuffix(pattern, "+"); ok {
		return strings.HasPrefix(dev, s)
	}
	if s, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(dev, s)
	}
	return pattern == dev
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// dropping names the gate and what drops in it: "iptables-nft FORWARD (policy drop)".
func (g gate) dropping() string {
	if g.DropBy == "policy" {
		return g.Name + " (policy drop)"
	}
	return fmt.Sprintf("%s (%s)", g.Name, g.DropBy)
}

func (g gate) fix(p netip.Prefix) string {
	kw := "ip"
	if p.Addr().Is6() {
		kw = "ip6"
	}
	return fmt.Sprintf(g.fixFmt, p, kw)
}

// maxJumpDepth bounds how deep jumps are followed (a loop the kernel would refuse cannot hang us).
const maxJumpDepth = 8

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

// readGates reads every gate of the calling thread's network namespace. A tool that is not installed
// means that firewall is not in use; a tool that fails is an error.
func readGates() ([]gate, error) {
	var gates []gate
	var errs []error
	for _, v := range []xtables.Variant{xtables.VariantLegacy, xtables.VariantNFT} {
		for _, fam := range xtables.Families() {
			cfg := xtables.Config{Variant: v}
			if v == xtables.VariantLegacy && !legacyFilterLoaded(fam) {
				continue // reading it would create it
			}
			save, err := xtables.NewExec(cfg).Save(fam, "filter")
			if errors.Is(err, exec.ErrNotFound) {
				continue
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !strings.Contains(save, "*filter") {
				continue
			}
			g, err := iptablesGate(cfg.Command(fam)+" FORWARD", save, cfg.Command(fam), fam)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			gates = append(gates, g)
		}
	}
	js, err := exec.Command("nft", "-j", "list", "ruleset").Output()
	switch {
	case errors.Is(err, exec.ErrNotFound):
	case err != nil:
		errs = append(errs, fmt.Errorf("nft -j list ruleset: %w", err))
	default:
		g, err := nftGates(js)
		if err != nil {
			errs = append(errs, err)
		}
		gates = append(gates, g...)
	}
	return gates, errors.Join(errs...)
}

// legacyFilterLoaded tells whether the legacy filter table of fam exists in this namespace.
func legacyFilterLoaded(fam xtables.Family) bool {
	names := "/proc/net/ip_tables_names"
	if fam == xtables.IPv6 {
		names = "/proc/net/ip6_tables_names"
	}
	b, err := os.ReadFile(names)
	if err != nil {
		return false
	}
	for _, n := range strings.Fields(string(b)) {
		if n == "filter" {
			return true
		}
	}
	return false
}
