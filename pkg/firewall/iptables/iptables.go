// Package iptables masquerades pod traffic with iptables and ip6tables, in the layout of the reference CNI
// plugins: per (network, container) a nat chain CNI-<hash> that accepts the pod's own subnet and
// masquerades the rest but multicast, entered from POSTROUTING by one rule per pod address. Every rule
// carries the comment `name: "<network>" id: "<container ID>"`.
//
// Per IP family an operation reads the nat table once (`iptables -w -t nat -S`) and applies what
// differs in one `iptables-restore --noflush -w` run (see batch): an Ensure that finds everything in
// place runs iptables once, a fresh one twice, a Remove twice (once when there is nothing to remove).
// With iptables-nft every run that deletes costs some 18 ms of kernel commit, so a Remove that deleted
// with -D, -F and -X one run each took about 55 ms per family; batched it commits once.
package iptables

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
)

// client is the part of iptables the masquerader uses: one method per iptables run.
type client interface {
	// Rules returns `iptables -t table -S chain`; ok is false when the chain does not exist.
	Rules(table, chain string) (lines []string, ok bool, err error)
	// Chains lists the table's chains.
	Chains(table string) ([]string, error)
	NewChain(table, chain string) error // errExists if it is there
	Append(table, chain string, s ...string) error
	Delete(table, chain string, s ...string) error // errNotExist if no such rule or chain
	Flush(table, chain string) error               // errNotExist if no such chain
	DeleteChain(table, chain string) error         // errNotExist if no such chain
}

var (
	errNotExist = errors.New("does not exist")
	errExists   = errors.New("already exists")
)

// family is one of the two tables iptables keeps per hook: IPv4 (iptables) or IPv6 (ip6tables).
type family int

const (
	ipv4 family = iota
	ipv6
)

func (f family) String() string { return [...]string{"iptables", "ip6tables"}[f] }

// Masq is the iptables Masquerader. Its methods use the network namespace of the calling thread.
type Masq struct {
	connect func(family) (client, error)
	clients [2]client // made on first use: each costs an `iptables --version`
}

var _ firewall.Masquerader = (*Masq)(nil)

// New returns a Masquerader that runs iptables and ip6tables from $PATH, waiting for the xtables lock as
// long as it takes.
func New() *Masq { return &Masq{connect: connectBatch} }

// newWithClient is New with the iptables runs going to connect's clients (tests).
func newWithClient(connect func(family) (client, error)) *Masq { return &Masq{connect: connect} }

// Probe returns a Masquerader when iptables can be used here: the command exists and can read a table,
// which is the reference's test for choosing the default masquerade backend. The returned Masq keeps the
// IPv4 client the probe made, saving one `iptables --version`.
func Probe() (*Masq, bool) {
	c, err := connectBatch(ipv4)
	if err != nil {
		return nil, false
	}
	// Reading the nat table is the probe; the Ensure that follows uses what it read.
	if _, _, err = c.Rules(natTable, postrouting); err != nil {
		return nil, false
	}
	m := New()
	m.clients[ipv4] = c
	return m, true
}

func (m *Masq) client(f family) (client, error) {
	if m.clients[f] == nil {
		c, err := m.connect(f)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", f, err)
		}
		m.clients[f] = c
	}
	return m.clients[f], nil
}

// Ensure installs k's masquerade for addrs. It touches only the IP families that addrs use.
func (m *Masq) Ensure(k firewall.Key, addrs []netip.Prefix) error {
	if err := k.Check(); err != nil {
		return err
	}
	v4, v6, err := firewall.SplitFamilies(addrs)
	if err != nil {
		return fmt.Errorf("ipmasq %v: %w", k, err)
	}
	for f, list := range [2][]netip.Prefix{ipv4: v4, ipv6: v6} {
		if len(list) == 0 {
			continue
		}
		if err := m.ensure(family(f), k, list); err != nil {
			return fmt.Errorf("ipmasq %v: %w", k, err)
		}
	}
	return nil
}

func (m *Masq) ensure(f family, k firewall.Key, addrs []netip.Prefix) error {
	c, err := m.client(f)
	if err != nil {
		return err
	}
	return commit(c, ensureIn(c, f, k, addrs))
}

// ensureIn makes the changes ensure commits.
func ensureIn(c client, f family, k firewall.Key, addrs []netip.Prefix) error {
	var err error
	want := desired(k.Network, k.ContainerID, addrs)
	var have state
	if have.jumps, err = readJumps(c, want.chain); err != nil {
		return fmt.Errorf("%v: %w", f, err)
	}
	// Without jumps the chain is most likely new: creating it right away answers whether it existed and
	// saves listing it.
	created := false
	if len(have.jumps) == 0 {
		err := c.NewChain(natTable, want.chain)
		if err != nil && !errors.Is(err, errExists) {
			return fmt.Errorf("%v: create chain %s: %w", f, want.chain, err)
		}
		created = err == nil
	}
	if !created {
		if have.exists, have.rules, err = readChain(c, want.chain); err != nil {
			return fmt.Errorf("%v: %w", f, err)
		}
		if !have.exists {
			if err := c.NewChain(natTable, want.chain); err != nil && !errors.Is(err, errExists) {
				return fmt.Errorf("%v: create chain %s: %w", f, want.chain, err)
			}
		}
	}
	if !specsEqual(have.rules, want.rules) {
		if len(have.rules) > 0 {
			if err := c.Flush(natTable, want.chain); err != nil {
				return fmt.Errorf("%v: flush chain %s: %w", f, want.chain, err)
			}
		}
		for _, r := range want.rules {
			if err := c.Append(natTable, want.chain, r...); err != nil {
				return fmt.Errorf("%v: append to %s: %w", f, want.chain, err)
			}
		}
	}
	// New jumps go in before stale ones go out, so a pod keeping an address never loses its masquerade.
	for _, j := range want.jumps {
		if !containsSpec(have.jumps, j) {
			if err := c.Append(natTable, postrouting, j...); err != nil {
				return fmt.Errorf("%v: append to %s: %w", f, postrouting, err)
			}
		}
	}
	for _, j := range have.jumps {
		if !containsSpec(want.jumps, j) {
			if err := c.Delete(natTable, postrouting, j...); err != nil && !errors.Is(err, errNotExist) {
				return fmt.Errorf("%v: delete stale %s rule %s: %w", f, postrouting, j, err)
			}
		}
	}
	return nil
}

// state is what one attachment has in one family's nat table.
type state struct {
	exists bool
	rules  []spec // of its chain
	jumps  []spec // POSTROUTING rules jumping to its chain, whatever their match
}

// read lists POSTROUTING and chain: two iptables runs.
func read(c client, chain string) (state, error) {
	var st state
	var err error
	if st.jumps, err = readJumps(c, chain); err != nil {
		return st, err
	}
	st.exists, st.rules, err = readChain(c, chain)
	return st, err
}

// readJumps returns the POSTROUTING rules that jump to chain.
func readJumps(c client, chain string) ([]spec, error) {
	post, _, err := c.Rules(natTable, postrouting)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", postrouting, err)
	}
	all, err := parseRules(post, postrouting)
	if err != nil {
		return nil, err
	}
	var jumps []spec
	for _, s := range all {
		if s.target() == chain {
			jumps = append(jumps, s)
		}
	}
	return jumps, nil
}

// readChain returns whether chain exists and its rules.
func readChain(c client, chain string) (bool, []spec, error) {
	lines, ok, err := c.Rules(natTable, chain)
	if err != nil {
		return false, nil, fmt.Errorf("list %s: %w", chain, err)
	}
	rules, err := parseRules(lines, chain)
	return ok, rules, err
}

func specsEqual(a, b []spec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].equal(b[i]) {
			return false
		}
	}
	return true
}

// Remove deletes k's chain and every POSTROUTING rule jumping to it, in both families, whatever addresses
// they match (the reference's older releases matched the pod's subnet rather than its address). A family
// whose command is not installed has nothing to remove.
func (m *Masq) Remove(k firewall.Key) error {
	if err := k.Check(); err != nil {
		return err
	}
	chain := ChainName(k.Network, k.ContainerID)
	var errs []error
	for _, f := range []family{ipv4, ipv6} {
		c, err := m.client(f)
		if errors.Is(err, exec.ErrNotFound) {
			continue
		}
		if err == nil {
			var st state
			if st, err = read(c, chain); err == nil {
				err = removeChain(c, chain, st)
			}
			err = commit(c, err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%v: %w", f, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ipmasq %v: remove: %w", k, err)
	}
	return nil
}

func removeChain(c client, chain string, st state) error {
	for _, j := range st.jumps {
		if err := c.Delete(natTable, postrouting, j...); err != nil && !errors.Is(err, errNotExist) {
			return fmt.Errorf("delete %s rule %s: %w", postrouting, j, err)
		}
	}
	if !st.exists {
		return nil
	}
	if len(st.rules) > 0 {
		if err := c.Flush(natTable, chain); err != nil && !errors.Is(err, errNotExist) {
			return fmt.Errorf("flush chain %s: %w", chain, err)
		}
	}
	if err := c.DeleteChain(natTable, chain); err != nil && !errors.Is(err, errNotExist) {
		return fmt.Errorf("delete chain %s: %w", chain, err)
	}
	return nil
}

// Check reports what of k's masquerade for addrs is missing or different.
func (m *Masq) Check(k firewall.Key, addrs []netip.Prefix) error {
	if err := k.Check(); err != nil {
		return err
	}
	v4, v6, err := firewall.SplitFamilies(addrs)
	if err != nil {
		return fmt.Errorf("ipmasq %v: %w", k, err)
	}
	var problems []string
	for f, list := range [2][]netip.Prefix{ipv4: v4, ipv6: v6} {
		if len(list) == 0 {
			continue
		}
		c, err := m.client(family(f))
		if err != nil {
			return fmt.Errorf("ipmasq %v: %w", k, err)
		}
		want := desired(k.Network, k.ContainerID, list)
		have, err := read(c, want.chain)
		_ = commit(c, nil) // reads only: forget the copy
		if err != nil {
			return fmt.Errorf("ipmasq %v: %v: %w", k, family(f), err)
		}
		for _, p := range diff(want, have) {
			problems = append(problems, fmt.Sprintf("%v: %s", family(f), p))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("ipmasq %v: %s", k, strings.Join(problems, "; "))
	}
	return nil
}

// diff says how have differs from want, one sentence per difference.
func diff(want layout, have state) []string {
	var out []string
	if !have.exists {
		out = append(out, fmt.Sprintf("nat chain %s is missing", want.chain))
	} else {
		for _, r := range want.rules {
			if !containsSpec(have.rules, r) {
				out = append(out, fmt.Sprintf("chain %s lacks rule %s", want.chain, render(r)))
			}
		}
		if len(out) == 0 && !specsEqual(have.rules, want.rules) {
			out = append(out, fmt.Sprintf("chain %s has %d rules, want exactly %d in order (accepts first, masquerade last)",
				want.chain, len(have.rules), len(want.rules)))
		}
	}
	for _, j := range want.jumps {
		if !containsSpec(have.jumps, j) {
			out = append(out, fmt.Sprintf("%s has no jump from %s to %s", postrouting, j.option("-s"), want.chain))
		}
	}
	return out
}

// GC removes the chains (and their POSTROUTING jumps) of network's containers that have no attachment in
// valid. A chain is recognised as network's by the comment on its rules, checked against the chain's
// name; the chain holds no interface name, so it stays while any interface of its container is valid.
func (m *Masq) GC(network string, valid map[conf.Attachment]bool) error {
	liveIDs := make(map[string]bool, len(valid))
	for a := range valid {
		liveIDs[a.ContainerID] = true
	}
	var errs []error
	for _, f := range []family{ipv4, ipv6} {
		c, err := m.client(f)
		if errors.Is(err, exec.ErrNotFound) {
			continue
		}
		if err == nil {
			err = commit(c, gc(c, network, liveIDs))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%v: %w", f, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ipmasq gc %q: %w", network, err)
	}
	return nil
}

func gc(c client, network string, liveIDs map[string]bool) error {
	post, _, err := c.Rules(natTable, postrouting)
	if err != nil {
		return fmt.Errorf("list %s: %w", postrouting, err)
	}
	all, err := parseRules(post, postrouting)
	if err != nil {
		return err
	}
	// owner maps each of network's chains to its container; jumps lists what enters each chain.
	owner := map[string]string{}
	jumps := map[string][]spec{}
	for _, s := range all {
		chain := s.target()
		if !chainNamePattern.MatchString(chain) {
			continue
		}
		jumps[chain] = append(jumps[chain], s)
		if net, id, ok := parseComment(s.comment()); ok && net == network && ChainName(net, id) == chain {
			owner[chain] = id
		}
	}
	// A chain that nothing jumps to is left over from an interrupted ADD or DEL: read its own comments.
	chains, err := c.Chains(natTable)
	if err != nil {
		return fmt.Errorf("list chains: %w", err)
	}
	rules := map[string][]spec{}
	for _, chain := range chains {
		if !chainNamePattern.MatchString(chain) || jumps[chain] != nil {
			continue
		}
		lines, ok, err := c.Rules(natTable, chain)
		if err != nil || !ok {
			continue // gone meanwhile, or unreadable: not ours to judge
		}
		if rules[chain], err = parseRules(lines, chain); err != nil {
			return err
		}
		for _, s := range rules[chain] {
			if net, id, ok := parseComment(s.comment()); ok && net == network && ChainName(net, id) == chain {
				owner[chain] = id
				break
			}
		}
	}
	var errs []error
	for chain, id := range owner {
		if liveIDs[id] {
			continue
		}
		st := state{exists: true, jumps: jumps[chain], rules: rules[chain]}
		if st.jumps != nil { // its rules were not read above
			lines, ok, err := c.Rules(natTable, chain)
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s: %w", chain, err))
				continue
			}
			st.exists = ok
			if st.rules, err = parseRules(lines, chain); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := removeChain(c, chain, st); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
