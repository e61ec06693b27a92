package xtables

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Table is one table of one IP family as iptables-save (or `iptables -S`) prints it.
type Table struct {
	Chains map[string]bool   // every chain, built-in or not
	Rules  map[string][]Rule // the rules of the chains the parser kept, in order
}

// NewTable returns a table with no chains.
func NewTable() Table { return Table{Chains: map[string]bool{}, Rules: map[string][]Rule{}} }

// JumpsTo returns the rules of chain from that jump to chain to.
func (t Table) JumpsTo(from, to string) []Rule {
	var out []Rule
	for _, r := range t.Rules[from] {
		if r.Target() == to {
			out = append(out, r)
		}
	}
	return out
}

// builtinChains are the chains of the nat table, which a fresh table has and iptables-save prints
// first, with a policy.
var builtinChains = []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}

// CNIChains tells whether Parse should keep the rules of chain: the built-in chains' and those named
// CNI-*, which is everything a CNI plugin installs or jumps from. Other chains, such as kube-proxy's
// thousands of KUBE-SVC and KUBE-SEP rules, are never split into words.
func CNIChains(chain string) bool {
	return slices.Contains(builtinChains, chain) || strings.HasPrefix(chain, "CNI-")
}

// Parse reads table as `iptables-save -t <table>` or `iptables -t <table> -S` prints it: the chains
// (":CHAIN POLICY [counters]", "-P CHAIN POLICY", "-N CHAIN") and the rules ("-A CHAIN ...") of chains
// that keep accepts (nil: all). Output of iptables-save that holds no such table (a family whose table
// was never used) is an empty table.
func Parse(text, table string, keep func(chain string) bool) (Table, error) {
	t := NewTable()
	in := true // `iptables -S` prints no table header; iptables-save's "*table" lines switch this
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '*':
			in = line[1:] == table
		case line == "COMMIT":
			in = false
		case in:
			if err := t.parseLine(line, keep); err != nil {
				return Table{}, fmt.Errorf("%s table line %d: %w", table, n+1, err)
			}
		}
	}
	return t, nil
}

// parseLine reads one line of the table that declares a chain or appends a rule.
func (t Table) parseLine(line string, keep func(string) bool) error {
	switch {
	case line[0] == ':':
		name, _, _ := strings.Cut(line[1:], " ")
		t.Chains[name] = true
	case strings.HasPrefix(line, "-P ") || strings.HasPrefix(line, "-N "):
		name, _, _ := strings.Cut(line[3:], " ")
		t.Chains[name] = true
	case strings.HasPrefix(line, "-A "):
		// iptables-save prints chain names as they are, never quoted: only the rule's words are unquoted.
		chain, rest := strings.TrimLeft(line[3:], " \t"), ""
		if i := strings.IndexAny(chain, " \t"); i >= 0 {
			chain, rest = chain[:i], chain[i:]
		}
		if chain == "" {
			return fmt.Errorf("%q names no chain", line)
		}
		if keep != nil && !keep(chain) {
			return nil
		}
		words, err := splitWords(rest)
		if err != nil {
			return err
		}
		t.Rules[chain] = append(t.Rules[chain], Rule(words))
	default:
		return fmt.Errorf("unexpected %q", line)
	}
	return nil
}

// Save prints t as `iptables-save -t <name>` does: the built-in chains, then the others sorted, then
// every chain's rules in that order.
func (t Table) Save(name string) string {
	var user []string
	for c := range t.Chains {
		if !slices.Contains(builtinChains, c) {
			user = append(user, c)
		}
	}
	slices.Sort(user)
	var order []string
	for _, c := range builtinChains {
		if t.Chains[c] {
			order = append(order, c)
		}
	}
	order = append(order, user...)
	var b strings.Builder
	fmt.Fprintf(&b, "*%s\n", name)
	for _, c := range order {
		policy := "-"
		if slices.Contains(builtinChains, c) {
			policy = "ACCEPT"
		}
		fmt.Fprintf(&b, ":%s %s [0:0]\n", c, policy)
	}
	for _, c := range order {
		for _, r := range t.Rules[c] {
			fmt.Fprintf(&b, "-A %s %s\n", c, r)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// clone returns a copy of t whose maps can change without changing t; the rule lists are shared, so
// apply replaces a list rather than changing it in place.
func (t Table) clone() Table {
	return Table{Chains: maps.Clone(t.Chains), Rules: maps.Clone(t.Rules)}
}

// targets that are no chain, among those the CNI plugins use.
var builtinTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "RETURN": true, "MASQUERADE": true, "DNAT": true, "SNAT": true, "MARK": true,
}

// apply makes one iptables-restore command line (-N, -F, -X, -A, -I, -D) of t's table, refusing what
// iptables refuses: a chain that exists or does not, a chain that is not empty or still a target, a rule
// that does not exist, a jump to a chain that does not exist.
func (t Table) apply(line string) error {
	w, err := splitWords(line)
	if err != nil {
		return err
	}
	if len(w) < 2 {
		return fmt.Errorf("short line")
	}
	op, chain, r := w[0], w[1], Rule(w[2:])
	if !t.Chains[chain] && op != "-N" {
		return fmt.Errorf("no chain %s", chain)
	}
	switch op {
	case "-N":
		if t.Chains[chain] {
			return fmt.Errorf("chain %s already exists", chain)
		}
		t.Chains[chain] = true
	case "-F":
		delete(t.Rules, chain)
	case "-X":
		return t.deleteChain(chain)
	case "-A", "-I":
		return t.insert(op, chain, r)
	case "-D":
		i := slices.IndexFunc(t.Rules[chain], r.Equal)
		if i < 0 {
			return fmt.Errorf("bad rule (does a matching rule exist in that chain?)")
		}
		t.Rules[chain] = slices.Delete(slices.Clone(t.Rules[chain]), i, i+1)
	default:
		return fmt.Errorf("unknown command %s", op)
	}
	return nil
}

func (t Table) deleteChain(chain string) error {
	if len(t.Rules[chain]) > 0 {
		return fmt.Errorf("chain %s is not empty", chain)
	}
	for c, rules := range t.Rules {
		for _, r := range rules {
			if r.Target() == chain {
				return fmt.Errorf("chain %s is referenced from %s", chain, c)
			}
		}
	}
	delete(t.Chains, chain)
	delete(t.Rules, chain)
	return nil
}

// insert runs -A (r) or -I (r's first word is the 1-based position).
func (t Table) insert(op, chain string, r Rule) error {
	pos := len(t.Rules[chain])
	if op == "-I" {
		if len(r) == 0 {
			return fmt.Errorf("-I without a position")
		}
		n, err := strconv.Atoi(r[0])
		if err != nil || n < 1 || n > pos+1 {
			return fmt.Errorf("bad position %q", r[0])
		}
		pos, r = n-1, r[1:]
	}
	if tg := r.Target(); tg != "" && !builtinTargets[tg] && !t.Chains[tg] {
		return fmt.Errorf("couldn't load target %q", tg)
	}
	t.Rules[chain] = slices.Insert(slices.Clone(t.Rules[chain]), pos, r.Canonical())
	return nil
}
