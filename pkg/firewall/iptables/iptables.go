// Package iptables masquerades pod traffic with iptables and ip6tables, in the layout of the reference CNI
// plugins: per (network, container) a nat chain CNI-<hash> that accepts the pod's own subnet and
// masquerades the rest but multicast, entered from POSTROUTING by one rule per pod address. Every rule
// carries the comment `name: "<network>" id: "<container ID>"`.
//
// Per IP family an operation applies what differs in one `iptables-restore --noflush` run (pkg/xtables)
// and reads no more of the nat table than it needs, so that its cost does not grow with the pods on the
// node (each has a chain and a POSTROUTING jump there): a fresh Ensure writes its chain and jumps without
// reading, where the nf_tables build alone may hold the table in one nf_tables transaction without a
// process, in iptables-nft's own encoding of the rules (xtables.Runner.AddChain: iptables-nft-restore
// lists every chain of the table before it changes anything), and otherwise in one restore; the
// kernel, or the restore, refuses them whole when the chain exists, and then the Ensure reads the
// table and applies the difference. A Remove first asks the kernel whether the family may have the
// chain at all and runs nothing for a family that has not, removes the jumps and the chain in one
// nf_tables transaction without a process where only the nf_tables build may hold the table (both in
// xtables.Runner.DropChain: a /proc read and one netlink socket, flat as the node fills, where
// iptables-nft-restore's -D reads every POSTROUTING rule), and otherwise lists POSTROUTING (`iptables -S`), and its chain too when no
// jump to it is there, then restores what it found (two runs for a pod's family; NewForCleanup's lists
// the chain first, three runs); Check lists the two chains. GC
// reads the whole table (`iptables-save -t nat`), as it must. With iptables-nft every run that deletes
// costs some 18 ms of kernel commit, so a Remove that deleted with -D, -F and -X one run each took about
// 55 ms per family; batched it commits once. A restore waits for the xtables lock at most
// xtables.Config.Wait (60 s by default), then fails with CNI code 11 (try again later), as the portmap
// iptables backend does.
//
// Fault point (a test hook, see pkg/fault): "masq-iptables-ipv6" is passed just before an operation
// (Ensure, Remove, GC) commits its IPv6 change, after its IPv4 one; an operation with nothing to change in
// IPv6 does not pass it. NETLOOM_FAULT_POINT=bridge:masq-iptables-ipv6 kills the bridge plugin there, with
// the IPv4 rules changed and the IPv6 ones not.
package iptables

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strings"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/xtables"
)

// FaultIPv6 is the fault point between the IPv4 and the IPv6 change of one operation.
const FaultIPv6 = "masq-iptables-ipv6"

// Masq is the iptables Masquerader. Its methods use the network namespace of the calling thread.
type Masq struct {
	run xtables.Runner
	// cleanup says the attachments Remove deletes were most likely made by the other backend: it lists
	// the chain first, which does not exist then, rather than POSTROUTING, which is the longer read.
	cleanup bool
}

var _ firewall.Masquerader = (*Masq)(nil)

// New returns a Masquerader that runs the system's iptables tools, waiting for the xtables lock at most
// xtables.DefaultWait.
func New() *Masq { return NewWithConfig(xtables.Config{}) }

// NewForCleanup is New for removing what the attachments of another masquerade backend may have left
// here (ipmasq's DEL sweeps both backends): when the kernel cannot tell that there is nothing (the
// legacy nat table is loaded, or the chain exists), its Remove lists the chain before POSTROUTING.
func NewForCleanup() *Masq {
	m := New()
	m.cleanup = true
	return m
}

// NewWithConfig returns a Masquerader running the iptables tools that c picks.
func NewWithConfig(c xtables.Config) *Masq { return newWithTools(xtables.NewExec(c)) }

// newWithTools is New with the table reads and writes going to t (tests).
func newWithTools(t xtables.Tools) *Masq {
	return &Masq{run: xtables.Runner{Tools: t, Table: natTable, IPv6Point: FaultIPv6}}
}

// Probe returns a Masquerader when iptables can be used here: the tools exist and can read the nat
// table, the reference's test for choosing the default masquerade backend (netloom lists POSTROUTING
// rather than saving the whole table, which grows with the node's pods). pkg/firewall/ipmasq runs it
// only after iptables failed.
func Probe() (*Masq, bool) {
	x := xtables.NewExec(xtables.Config{})
	if err := x.ProbeChain(xtables.IPv4, natTable, postrouting); err != nil {
		return nil, false
	}
	return newWithTools(x), true
}

// readChain returns what f's nat table holds of chain: the chain and POSTROUTING's rules, or, when the
// chain does not exist (and so nothing jumps to it), a table without it. On a full node this is much
// less to read than the table (see pkg/xtables).
func (m *Masq) readChain(f xtables.Family, chain string) (xtables.Table, error) {
	t, err := m.run.ReadChains(f, chain)
	if err != nil || !t.Chains[chain] {
		return t, err
	}
	post, err := m.run.ReadChains(f, postrouting)
	if err != nil {
		return xtables.Table{}, err
	}
	t.Chains[postrouting] = post.Chains[postrouting]
	t.Rules[postrouting] = post.Rules[postrouting]
	return t, nil
}

// readForRemove returns what Remove needs of f's nat table: POSTROUTING's rules, and chain when it
// exists (not its rules: Remove flushes it). When POSTROUTING jumps to chain, chain exists (iptables
// refuses a jump to a missing chain), so only without a jump is chain listed. Unless m is for cleanup,
// which lists the chain first (see NewForCleanup).
func (m *Masq) readForRemove(f xtables.Family, chain string) (xtables.Table, error) {
	if m.cleanup {
		return m.readChain(f, chain)
	}
	t, err := m.run.ReadChains(f, postrouting)
	if err != nil {
		return xtables.Table{}, err
	}
	if len(t.JumpsTo(postrouting, chain)) > 0 {
		t.Chains[chain] = true
		return t, nil
	}
	c, err := m.run.ReadChains(f, chain)
	if err != nil {
		return xtables.Table{}, err
	}
	t.Chains[chain] = c.Chains[chain]
	return t, nil
}

// applyBoth reads in both families what read returns and commits the changes plan makes to it. A family
// whose tools are not installed has nothing to change.
func (m *Masq) applyBoth(context string, read func(xtables.Family) (xtables.Table, error), plan func(xtables.Table) xtables.Batch) error {
	var errs []error
	for _, f := range xtables.Families() {
		t, err := read(f)
		if err == nil {
			err = m.run.Apply(f, t, func(t xtables.Table) (xtables.Batch, error) { return plan(t), nil })
		}
		if err != nil && !errors.Is(err, exec.ErrNotFound) {
			errs = append(errs, fmt.Errorf("%v: %w", f, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", context, err)
	}
	return nil
}

// byFamily checks k and splits addrs into the IPv4 and the IPv6 ones.
func byFamily(k firewall.Key, addrs []netip.Prefix) ([2][]netip.Prefix, error) {
	if err := k.Check(); err != nil {
		return [2][]netip.Prefix{}, err
	}
	v4, v6, err := firewall.SplitFamilies(addrs)
	if err != nil {
		return [2][]netip.Prefix{}, fmt.Errorf("ipmasq %v: %w", k, err)
	}
	return [2][]netip.Prefix{xtables.IPv4: v4, xtables.IPv6: v6}, nil
}

// Ensure installs k's masquerade for addrs. It touches only the IP families that addrs use.
func (m *Masq) Ensure(k firewall.Key, addrs []netip.Prefix) error {
	split, err := byFamily(k, addrs)
	if err != nil {
		return err
	}
	for _, f := range xtables.Families() {
		if len(split[f]) == 0 {
			continue
		}
		want := desired(k.Network, k.ContainerID, split[f])
		if m.run.AddChain(f, postrouting, want.chain, want.rules, want.jumps) {
			continue
		}
		plan := func(t xtables.Table) (xtables.Batch, error) { return planEnsure(t, want), nil }
		if err := m.run.ApplyGuess(f, freshTable(), plan); err != nil {
			return fmt.Errorf("ipmasq %v: %v: %w", k, f, err)
		}
	}
	return nil
}

// freshTable is the nat table an Ensure expects: without the attachment's chain, so without jumps to it.
func freshTable() xtables.Table {
	t := xtables.NewTable()
	t.Chains[postrouting] = true
	return t
}

// planEnsure is the batch that gives t the layout want. New jumps go in before stale ones go out, so a
// pod keeping an address never loses its masquerade.
func planEnsure(t xtables.Table, want layout) xtables.Batch {
	var b xtables.Batch
	b.SetChain(t, want.chain, want.rules)
	have := t.JumpsTo(postrouting, want.chain)
	for _, j := range want.jumps {
		if !xtables.Contains(have, j) {
			b.Append(postrouting, j)
		}
	}
	for _, j := range have {
		if !xtables.Contains(want.jumps, j) {
			b.Delete(postrouting, j)
		}
	}
	return b
}

// Remove deletes k's chain and every POSTROUTING rule jumping to it, in both families, whatever addresses
// they match (the reference's older releases matched the pod's subnet rather than its address). A family
// whose command is not installed has nothing to remove.
func (m *Masq) Remove(k firewall.Key) error { return m.RemoveHinted(k, nil) }

// RemoveHinted is Remove told the addresses k's rules were most likely made for (a DEL's prevResult).
// Per family it first asks the kernel whether the family may have k's chain at all and runs nothing
// when it has not: no rule can jump to a chain that does not exist. Then, where the nf_tables build of
// iptables alone may hold the table, it removes the jumps and the chain in one nf_tables transaction
// without running iptables. Both are xtables.Runner.DropChain (one /proc read and one netlink socket,
// no process), which costs the same with 1,000 pods' jumps in
// POSTROUTING as with none, where iptables-nft-restore's -D reads and converts every rule of POSTROUTING.
// Otherwise (the legacy build, or a transaction the kernel refused), in a family with hinted addresses,
// it tries without reading the one restore that deletes the jumps for them and the chain. iptables
// refuses that restore whole when the guess was wrong: -D of a jump that is not there fails, and so
// does -X of a chain that another jump still refers to, so it succeeds only when it removed everything
// of k in that family. Otherwise, and in a family without hint, it reads what Remove needs
// (readForRemove) and restores the difference.
func (m *Masq) RemoveHinted(k firewall.Key, addrs []netip.Prefix) error {
	if err := k.Check(); err != nil {
		return err
	}
	var hint [2][]netip.Prefix
	if v4, v6, err := firewall.SplitFamilies(addrs); err == nil && !m.cleanup {
		hint = [2][]netip.Prefix{xtables.IPv4: v4, xtables.IPv6: v6}
	}
	chain := ChainName(k.Network, k.ContainerID)
	plan := func(t xtables.Table) (xtables.Batch, error) {
		var b xtables.Batch
		b.RemoveChain(t, postrouting, chain)
		return b, nil
	}
	var errs []error
	for _, f := range xtables.Families() {
		if m.run.DropChain(f, postrouting, chain) != xtables.DropUnsure {
			continue
		}
		read := func() (xtables.Table, error) { return m.readForRemove(f, chain) }
		var err error
		if len(hint[f]) > 0 {
			guess := freshTable()
			guess.Chains[chain] = true
			guess.Rules[postrouting] = desired(k.Network, k.ContainerID, hint[f]).jumps
			err = m.run.ApplyGuessOr(f, guess, read, plan)
		} else {
			var t xtables.Table
			if t, err = read(); err == nil {
				err = m.run.Apply(f, t, plan)
			}
		}
		if err != nil && !errors.Is(err, exec.ErrNotFound) {
			errs = append(errs, fmt.Errorf("%v: %w", f, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ipmasq %v: remove: %w", k, err)
	}
	return nil
}

// Check reports what of k's masquerade for addrs is missing or different.
func (m *Masq) Check(k firewall.Key, addrs []netip.Prefix) error {
	split, err := byFamily(k, addrs)
	if err != nil {
		return err
	}
	var problems []string
	for _, f := range xtables.Families() {
		if len(split[f]) == 0 {
			continue
		}
		want := desired(k.Network, k.ContainerID, split[f])
		t, err := m.readChain(f, want.chain)
		if err != nil {
			return fmt.Errorf("ipmasq %v: %v: %w", k, f, err)
		}
		for _, p := range diff(want, t) {
			problems = append(problems, fmt.Sprintf("%v: %s", f, p))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("ipmasq %v: %s", k, strings.Join(problems, "; "))
	}
	return nil
}

// diff says how t differs from want, one sentence per difference.
func diff(want layout, t xtables.Table) []string {
	var out []string
	rules := t.Rules[want.chain]
	if !t.Chains[want.chain] {
		out = append(out, fmt.Sprintf("nat chain %s is missing", want.chain))
	} else {
		for _, r := range want.rules {
			if !xtables.Contains(rules, r) {
				out = append(out, fmt.Sprintf("chain %s lacks rule %s", want.chain, r))
			}
		}
		if len(out) == 0 && !xtables.RulesEqual(rules, want.rules) {
			out = append(out, fmt.Sprintf("chain %s has %d rules, want exactly %d in order (accepts first, masquerade last)",
				want.chain, len(rules), len(want.rules)))
		}
	}
	jumps := t.JumpsTo(postrouting, want.chain)
	for _, j := range want.jumps {
		if !xtables.Contains(jumps, j) {
			out = append(out, fmt.Sprintf("%s has no jump from %s to %s", postrouting, j.Option("-s"), want.chain))
		}
	}
	return out
}

// GC removes the chains (and their POSTROUTING jumps) of network's containers that have no attachment in
// valid. The chain holds no interface name, so it stays while any interface of its container is valid.
func (m *Masq) GC(network string, valid map[conf.Attachment]bool) error {
	liveIDs := make(map[string]bool, len(valid))
	for a := range valid {
		liveIDs[a.ContainerID] = true
	}
	return m.applyBoth(fmt.Sprintf("ipmasq gc %q", network), m.run.Read, func(t xtables.Table) xtables.Batch {
		var b xtables.Batch
		owner := owners(t, network)
		for _, chain := range slices.Sorted(maps.Keys(owner)) {
			if !liveIDs[owner[chain]] {
				b.RemoveChain(t, postrouting, chain)
			}
		}
		return b
	})
}

// owners maps each of network's masquerade chains in t to its container. A chain is recognised as
// network's by the comment on a rule in it or on a jump to it, checked against the chain's name; the
// rules of a chain that nothing jumps to any more (left by an interrupted ADD or DEL) tell as well.
func owners(t xtables.Table, network string) map[string]string {
	out := map[string]string{}
	note := func(chain string, r xtables.Rule) {
		if net, id, ok := parseComment(r.Comment()); ok && net == network && ChainName(net, id) == chain {
			out[chain] = id
		}
	}
	for _, j := range t.Rules[postrouting] {
		if isChainName(j.Target()) {
			note(j.Target(), j)
		}
	}
	for chain := range t.Chains {
		if isChainName(chain) {
			for _, r := range t.Rules[chain] {
				note(chain, r)
			}
		}
	}
	return out
}
