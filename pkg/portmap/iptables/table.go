package iptables

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/xtables"
)

// table is the nat table of one IP family, as read, with what its comments say.
type table struct {
	xtables.Table
	// comments caches commentOwner: an attachment's comment recurs on each of its rules and jumps.
	comments map[string]commentOwner
}

func newTable(t xtables.Table) table { return table{Table: t, comments: map[string]commentOwner{}} }

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

// ownerOf tells who owns r, a rule in or a jump to DN chain: the attachment its comment names when that
// comment belongs to chain, else fallback. ok is false when neither tells.
func (t table) ownerOf(chain string, r xtables.Rule, fallback owner, hasFallback bool) (owner, bool) {
	if o, ok := t.ownerIn(chain, r.Comment()); ok {
		return o, true
	}
	return fallback, hasFallback
}

// chainOwners maps each DN chain to the owner its jumps name, for the reference's DN rules, which carry
// no comment. A jump naming no interface (the reference's) wins over one that names one.
func (t table) chainOwners() map[string]owner {
	out := map[string]owner{}
	for _, j := range t.Rules[TopLevelDNATChain] {
		chain := j.Target()
		if prev, seen := out[chain]; seen && !prev.hasIf {
			continue
		}
		if o, ok := t.ownerIn(chain, j.Comment()); ok {
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
func mine(k firewall.Key, r xtables.Rule) bool {
	o, ok := parseComment(r.Comment())
	return !ok || o.is(k)
}

// hostKey reads the host side out of a DNAT rule; ok is false for any other rule.
func hostKey(r xtables.Rule) (portmap.HostKey, bool) {
	if r.Target() != "DNAT" {
		return portmap.HostKey{}, false
	}
	port, err := strconv.ParseUint(r.Option("--dport"), 10, 16)
	if err != nil || port == 0 {
		return portmap.HostKey{}, false
	}
	k := portmap.HostKey{Protocol: r.Option("-p"), HostPort: uint16(port)}
	if d := r.Option("-d"); d != "" {
		p, err := netip.ParsePrefix(d)
		if err != nil || !p.IsSingleIP() {
			return portmap.HostKey{}, false
		}
		k.HostIP = p.Addr()
	}
	return k, true
}

// owners maps each host key that a DN chain forwards, other than k's own, to its owner, as a conflict.
func (t table) owners(k firewall.Key) map[portmap.HostKey]*portmap.ConflictError {
	out := map[portmap.HostKey]*portmap.ConflictError{}
	own := DNATChain(k.Network, k.ContainerID)
	chainOwners := t.chainOwners()
	for _, chain := range slices.Sorted(maps.Keys(t.Rules)) {
		if !strings.HasPrefix(chain, dnChainPrefix) {
			continue
		}
		rules := t.Rules[chain]
		fallback, hasFallback := chainOwners[chain]
		for _, r := range rules {
			hk, ok := hostKey(r)
			if !ok || (chain == own && mine(k, r)) {
				continue
			}
			if _, seen := out[hk]; seen {
				continue
			}
			c := &portmap.ConflictError{Key: hk, Owner: "an attachment whose rules carry no owner (nat chain " + chain + ")"}
			o, known := t.ownerOf(chain, r, fallback, hasFallback)
			if known {
				c.Owner = o.String()
			}
			c.OwnerRef = evictRef{chain: chain, owner: o, known: known}.String()
			if to, err := netip.ParseAddrPort(r.Option("--to-destination")); err == nil {
				c.PodIP = to.Addr()
			}
			out[hk] = c
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
		if c, taken := owners[m.Key()]; taken {
			return c
		}
	}
	return nil
}

// evictRef is what Evict needs to find a conflicting owner's rules again: its DN chain and, when its
// comments tell, the owner. Parts are NUL-separated: no key part holds a NUL (firewall.Key.Check).
type evictRef struct {
	chain string
	owner owner
	known bool
}

func (r evictRef) String() string {
	if !r.known {
		return r.chain
	}
	ifName := ""
	if r.owner.hasIf {
		ifName = "\x00" + r.owner.ifName
	}
	return r.chain + "\x00" + r.owner.network + "\x00" + r.owner.containerID + ifName
}

func parseEvictRef(s string) (evictRef, bool) {
	parts := strings.Split(s, "\x00")
	r := evictRef{chain: parts[0]}
	switch len(parts) {
	case 1:
	case 3, 4:
		r.known = true
		r.owner = owner{network: parts[1], containerID: parts[2]}
		if len(parts) == 4 {
			r.owner.ifName, r.owner.hasIf = parts[3], true
		}
	default:
		return r, false
	}
	return r, strings.HasPrefix(r.chain, dnChainPrefix)
}
