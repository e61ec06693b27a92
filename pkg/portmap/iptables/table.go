package iptables

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netloom/netloom/pkg/firewall"
	fwipt "github.com/netloom/netloom/pkg/firewall/iptables"
	"github.com/netloom/netloom/pkg/portmap"
)

// table is the nat table of one IP family as `iptables-save -t nat` prints it.
type table struct {
	chains map[string]bool   // every chain, built-in or not
	rules  map[string][]rule // the rules of the built-in chains and the CNI- chains, in order
	// comments caches commentOwner: an attachment's comment recurs on each of its rules and jumps.
	comments map[string]commentOwner
}

// commentOwner is what a comment says: its owner, and that owner's DN chain (ok false: no owner).
type commentOwner struct {
	owner
	chain string
	ok    bool
}

// ownerIn tells whom comment names, when it may stand in chain: a comment naming another attachment's
// chain (copied by hand, say) names nobody.
func (t table) ownerIn(chain, comment string) (owner, bool) {
	c, seen := t.comments[comment]
	if !seen {
		c.owner, c.ok = parseComment(comment)
		if c.ok {
			c.chain = c.owner.chain()
		}
		if t.comments != nil {
			t.comments[comment] = c
		}
	}
	return c.owner, c.ok && c.chain == chain
}

// parsed tells whether parseSave keeps chain's rules: the built-in chains' and CNI chains'. Others, such
// as kube-proxy's thousands of KUBE-SVC and KUBE-SEP rules, are never read, so their lines are not split.
func parsed(chain string) bool {
	switch chain {
	case prerouting, output, postrouting, "INPUT":
		return true
	}
	return strings.HasPrefix(chain, "CNI-")
}

// parseSave reads `iptables-save -t nat` output. Output without a nat table (a family whose table was
// never used) is an empty table.
func parseSave(text string) (table, error) {
	t := table{chains: map[string]bool{}, rules: map[string][]rule{}, comments: map[string]commentOwner{}}
	inNat := false
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '*':
			inNat = line == "*"+natTable
		case !inNat:
		case line == "COMMIT":
			inNat = false
		case line[0] == ':':
			name, _, _ := strings.Cut(line[1:], " ")
			t.chains[name] = true
		case strings.HasPrefix(line, "-A "):
			if chain, _, _ := strings.Cut(line[3:], " "); !parsed(chain) {
				continue
			}
			words, err := fwipt.SplitWords(line)
			if err != nil {
				return table{}, fmt.Errorf("iptables-save line %d: %w", n+1, err)
			}
			if len(words) < 2 {
				return table{}, fmt.Errorf("iptables-save line %d: %q names no chain", n+1, line)
			}
			t.rules[words[1]] = append(t.rules[words[1]], rule(words[2:]))
		default:
			return table{}, fmt.Errorf("iptables-save line %d: unexpected %q", n+1, line)
		}
	}
	return t, nil
}

// jumpsTo returns the rules of from that jump to chain.
func (t table) jumpsTo(from, chain string) []rule {
	var out []rule
	for _, r := range t.rules[from] {
		if r.target() == chain {
			out = append(out, r)
		}
	}
	return out
}

// ownerOf tells who owns r, a rule in or a jump to DN chain: the attachment its comment names when that
// comment belongs to chain, else fallback. ok is false when neither tells.
func (t table) ownerOf(chain string, r rule, fallback owner, hasFallback bool) (owner, bool) {
	if o, ok := t.ownerIn(chain, r.comment()); ok {
		return o, true
	}
	return fallback, hasFallback
}

// chainOwners maps each DN chain to the owner its jumps name, for the reference's DN rules, which carry
// no comment. A jump naming no interface (the reference's) wins over one that names one.
func (t table) chainOwners() map[string]owner {
	out := map[string]owner{}
	for _, j := range t.rules[TopLevelDNATChain] {
		chain := j.target()
		if prev, seen := out[chain]; seen && !prev.hasIf {
			continue
		}
		if o, ok := t.ownerIn(chain, j.comment()); ok {
			if _, seen := out[chain]; !seen || !o.hasIf {
				out[chain] = o
			}
		}
	}
	return out
}

// mine tells whether r, a rule in or a jump to k's DN chain, is k's: its comment names k, or names no
// interface, or is not one of ours (the chain's name says it is k's container's). A comment naming
// another attachment is not ours to judge.
func mine(k firewall.Key, r rule) bool {
	o, ok := parseComment(r.comment())
	return !ok || o.is(k)
}

// hostKey reads the host side out of a DNAT rule; ok is false for any other rule.
func hostKey(r rule) (portmap.HostKey, bool) {
	if r.target() != "DNAT" {
		return portmap.HostKey{}, false
	}
	port, err := strconv.ParseUint(r.option("--dport"), 10, 16)
	if err != nil || port == 0 {
		return portmap.HostKey{}, false
	}
	k := portmap.HostKey{Protocol: r.option("-p"), HostPort: uint16(port)}
	if d := r.option("-d"); d != "" {
		p, err := netip.ParsePrefix(d)
		if err != nil || !p.IsSingleIP() {
			return portmap.HostKey{}, false
		}
		k.HostIP = p.Addr()
	}
	return k, true
}

// owners maps each host key that a DN chain forwards, other than k's own, to a description of its owner.
func (t table) owners(k firewall.Key) map[portmap.HostKey]string {
	out := map[portmap.HostKey]string{}
	own := DNATChain(k.Network, k.ContainerID)
	chainOwners := t.chainOwners()
	for _, chain := range slices.Sorted(maps.Keys(t.rules)) {
		if !strings.HasPrefix(chain, dnChainPrefix) {
			continue
		}
		rules := t.rules[chain]
		fallback, hasFallback := chainOwners[chain]
		for _, r := range rules {
			hk, ok := hostKey(r)
			if !ok || (chain == own && mine(k, r)) {
				continue
			}
			desc := "an attachment whose rules carry no owner (nat chain " + chain + ")"
			if o, ok := t.ownerOf(chain, r, fallback, hasFallback); ok {
				desc = o.String()
			}
			if _, seen := out[hk]; !seen {
				out[hk] = desc
			}
		}
	}
	return out
}

// conflict returns the first of ms whose host key another attachment forwards already.
func (t table) conflict(k firewall.Key, ms []portmap.Mapping) *portmap.ConflictError {
	if len(ms) == 0 {
		return nil
	}
	owners := t.owners(k)
	for _, m := range ms {
		if o, taken := owners[m.Key()]; taken {
			return &portmap.ConflictError{Key: m.Key(), Owner: o}
		}
	}
	return nil
}
