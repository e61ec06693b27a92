package iptables

import (
	"fmt"
	"slices"
	"strings"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/xtables"
)

// batch is the input of one iptables-restore run on the nat table: every change of one Add, Remove or
// GC in one IP family.
type batch struct{ xtables.Batch }

// skeleton adds what is missing of the shared chains: CNI-HOSTPORT-DNAT entered from PREROUTING and
// OUTPUT for local destinations, and with SNAT (unless another chain sets the mark) CNI-HOSTPORT-SETMARK
// and CNI-HOSTPORT-MASQ, the latter entered first thing in POSTROUTING. It creates a chain with -N,
// which fails rather than flushing a chain that appeared since t was read.
func (b *batch) skeleton(t table, o portmap.Options) {
	ensureRule := func(chain string, r xtables.Rule) {
		if !xtables.Contains(t.Rules[chain], r) {
			b.Append(chain, r)
		}
	}
	ensureChain := func(chain string) {
		if !t.Chains[chain] {
			b.NewChain(chain)
		}
	}
	ensureChain(TopLevelDNATChain)
	ensureRule(prerouting, dnatEntry())
	ensureRule(output, dnatEntry())
	if !o.SNAT || o.ExternalSetMarkChain != "" {
		return
	}
	ensureChain(SetMarkChain)
	ensureRule(SetMarkChain, setMarkRule(o.MarkMasqBit))
	ensureChain(MarkMasqChain)
	ensureRule(MarkMasqChain, masqRule(o.MarkMasqBit))
	if !xtables.Contains(t.Rules[postrouting], masqEntry()) {
		// First, as the reference puts it: the bridge and ptp plugins' masquerade rules would take the
		// packet otherwise.
		b.Insert(postrouting, 1, masqEntry())
	}
}

// chainEdit is what one DN chain becomes.
type chainEdit struct {
	chain string
	// rules is the chain's whole content afterwards; empty: the chain and every jump to it go.
	rules []xtables.Rule
	// drop lists existing jumps from CNI-HOSTPORT-DNAT to remove; front and back, jumps to insert at
	// the top and to append.
	drop, front, back []xtables.Rule
}

// edit adds the commands that turn e.chain as t has it into e. Rules that stay unchanged are not
// touched; changed ones are flushed and written again, so the chain is never seen half-written.
func (b *batch) edit(t table, e chainEdit) {
	if len(e.rules) == 0 {
		b.RemoveChain(t.Table, TopLevelDNATChain, e.chain)
		return
	}
	b.SetChain(t.Table, e.chain, e.rules)
	for _, j := range e.drop {
		b.Delete(TopLevelDNATChain, j)
	}
	for i := len(e.front) - 1; i >= 0; i-- {
		b.Insert(TopLevelDNATChain, 1, e.front[i])
	}
	for _, j := range e.back {
		b.Append(TopLevelDNATChain, j)
	}
}

// attachmentEdit replaces k's share of its DN chain, and k's jumps to it, with want. The rules of the
// container's other interfaces on the network stay.
func attachmentEdit(t table, k firewall.Key, want layout) chainEdit {
	e := chainEdit{chain: want.chain}
	for _, r := range t.Rules[want.chain] {
		if !mine(k, r) {
			e.rules = append(e.rules, r)
		}
	}
	e.rules = append(e.rules, want.rules...)
	var have []xtables.Rule
	for _, j := range t.JumpsTo(TopLevelDNATChain, want.chain) {
		if mine(k, j) {
			have = append(have, j)
		}
	}
	wantJumps := want.jumps()
	for _, j := range have {
		if !xtables.Contains(wantJumps, j) {
			e.drop = append(e.drop, j)
		}
	}
	for _, j := range want.front {
		if !xtables.Contains(have, j) {
			e.front = append(e.front, j)
		}
	}
	for _, j := range want.back {
		if !xtables.Contains(have, j) {
			e.back = append(e.back, j)
		}
	}
	return e
}

// planAdd is the batch that makes k's mappings of one family want, given t.
func planAdd(t table, k firewall.Key, want layout, o portmap.Options) batch {
	var b batch
	if len(want.rules) > 0 {
		b.skeleton(t, o)
	}
	b.edit(t, attachmentEdit(t, k, want))
	return b
}

// planRemove is the batch that removes k's rules of one family, and the chain of reference releases
// before 0.7 for k's container.
func planRemove(t table, k firewall.Key) batch {
	var b batch
	b.edit(t, attachmentEdit(t, k, layout{chain: DNATChain(k.Network, k.ContainerID)}))
	if sn := oldSNATChain(k.Network, k.ContainerID); t.Chains[sn] {
		b.RemoveChain(t.Table, oldTopLevelSNATChain, sn)
	}
	return b
}

// planGC is the batch that removes, from every DN chain, the rules and jumps of network's attachments
// that valid does not list. A rule whose comment names no interface (the reference's) stays while any
// interface of its container is valid; a rule whose owner cannot be told stays.
func planGC(t table, network string, valid map[conf.Attachment]bool) batch {
	liveIDs := map[string]bool{}
	for a := range valid {
		liveIDs[a.ContainerID] = true
	}
	var b batch
	chainOwners := t.chainOwners()
	for _, chain := range slices.Sorted(func(yield func(string) bool) {
		for c := range t.Chains {
			if strings.HasPrefix(c, dnChainPrefix) && !yield(c) {
				return
			}
		}
	}) {
		fallback, hasFallback := chainOwners[chain]
		live := func(r xtables.Rule) bool {
			o, ok := t.ownerOf(chain, r, fallback, hasFallback)
			switch {
			case !ok || o.network != network:
				return true
			case o.hasIf:
				return valid[conf.Attachment{ContainerID: o.containerID, IfName: o.ifName}]
			default:
				return liveIDs[o.containerID]
			}
		}
		e := chainEdit{chain: chain}
		changed := false
		for _, r := range t.Rules[chain] {
			if live(r) {
				e.rules = append(e.rules, r)
			} else {
				changed = true
			}
		}
		for _, j := range t.JumpsTo(TopLevelDNATChain, chain) {
			if !live(j) {
				e.drop = append(e.drop, j)
				changed = true
			}
		}
		if changed {
			b.edit(t, e)
		}
	}
	return b
}

// check says what of want (k's layout in one family) t lacks or has different, one sentence each.
func check(t table, k firewall.Key, want layout, o portmap.Options) []string {
	var out []string
	var mineRules, mineJumps []xtables.Rule
	for _, r := range t.Rules[want.chain] {
		if mine(k, r) {
			mineRules = append(mineRules, r)
		}
	}
	for _, j := range t.JumpsTo(TopLevelDNATChain, want.chain) {
		if mine(k, j) {
			mineJumps = append(mineJumps, j)
		}
	}
	if len(want.rules) == 0 {
		if len(mineRules)+len(mineJumps) > 0 {
			out = append(out, fmt.Sprintf("nat chain %s has %d rules and %d jumps of this attachment, want none",
				want.chain, len(mineRules), len(mineJumps)))
		}
		return out
	}
	var skel batch
	skel.skeleton(t, o)
	for _, l := range skel.Lines() {
		out = append(out, "missing: "+l)
	}
	if !t.Chains[want.chain] {
		return append(out, fmt.Sprintf("nat chain %s is missing", want.chain))
	}
	for _, r := range want.rules {
		if !xtables.Contains(mineRules, r) {
			out = append(out, fmt.Sprintf("chain %s lacks rule %s", want.chain, r))
		}
	}
	for _, r := range mineRules {
		if !xtables.Contains(want.rules, r) {
			out = append(out, fmt.Sprintf("chain %s has unexpected rule %s", want.chain, r))
		}
	}
	if len(out) == 0 && !xtables.RulesEqual(mineRules, want.rules) {
		out = append(out, fmt.Sprintf("chain %s has the right rules in the wrong order (mark rules must come before DNAT)", want.chain))
	}
	wantJumps := want.jumps()
	for _, j := range wantJumps {
		if !xtables.Contains(mineJumps, j) {
			out = append(out, fmt.Sprintf("%s lacks jump %s", TopLevelDNATChain, j))
		}
	}
	for _, j := range mineJumps {
		if !xtables.Contains(wantJumps, j) {
			out = append(out, fmt.Sprintf("%s has unexpected jump %s", TopLevelDNATChain, j))
		}
	}
	return out
}
