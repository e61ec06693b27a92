package iptables

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/xtables"
)

// This file is what the iptables backend does with the rules of the reference plugin for an attachment
// that netloom did not make: remove a dead owner's rules (Evict), and verify the reference's form of an
// attachment's rules (CheckReference), which differs from netloom's in its comments (no interface), its
// localhost source (127.0.0.1, none for IPv6) and its DN rules, which carry no comment.

var _ portmap.Evicter = (*Mapper)(nil)

// Evict removes the rules of the owner c names (c.OwnerRef, from a conflict this backend reported): that
// attachment's rules and jumps when its comments name its interface, else its container's whole DN
// chain, as the reference's own DEL removes it.
func (m *Mapper) Evict(c *portmap.ConflictError) error {
	ref, ok := parseEvictRef(c.OwnerRef)
	if !ok {
		return fmt.Errorf("evict %s: %q is not an owner of the iptables backend", c.Owner, c.OwnerRef)
	}
	return m.applyBoth(func(t table) batch { return planEvict(t, ref) })
}

// planEvict is the batch that removes ref's rules of one family.
func planEvict(t table, ref evictRef) batch {
	var b batch
	if !t.Chains[ref.chain] {
		return b
	}
	if ref.known && ref.owner.hasIf {
		k := firewall.Key{Network: ref.owner.network, ContainerID: ref.owner.containerID, IfName: ref.owner.ifName}
		b.edit(t, attachmentEdit(t, k, layout{chain: ref.chain}))
		return b
	}
	b.edit(t, chainEdit{chain: ref.chain})
	return b
}

// CheckReference verifies the reference plugin's rules for k's mappings: its DN chain forwards each
// mapping to the pod and CNI-HOSTPORT-DNAT jumps there for each host port, from PREROUTING and OUTPUT.
// found is false when no jump in the nat table carries the reference's comment for k's container (the
// attachment is not the reference's); problems is what differs, one sentence each.
func (m *Mapper) CheckReference(k firewall.Key, ms []portmap.Mapping) (problems []string, found bool, err error) {
	byFamily, err := normalize(ms)
	if err != nil {
		return nil, false, err
	}
	for _, f := range xtables.Families() {
		t, err := m.read(f)
		if errors.Is(err, exec.ErrNotFound) || (err != nil && len(byFamily[f]) == 0) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("%v: %w", f, err)
		}
		p, ok := checkReference(t, k, byFamily[f])
		found = found || ok
		for _, s := range p {
			problems = append(problems, fmt.Sprintf("%v: %s", f, s))
		}
	}
	return problems, found, nil
}

// referenceComment is the reference's comment on the jumps of a container: netloom's without interface.
func referenceComment(network, containerID string) string {
	return commentStart + network + commentID + containerID + `"`
}

// checkReference is CheckReference for one family's table and normalized mappings.
func checkReference(t table, k firewall.Key, ms []portmap.Mapping) (problems []string, found bool) {
	chain := DNATChain(k.Network, k.ContainerID)
	comment := referenceComment(k.Network, k.ContainerID)
	var jumps []xtables.Rule
	for _, j := range t.JumpsTo(TopLevelDNATChain, chain) {
		if j.Comment() == comment {
			jumps = append(jumps, j)
		}
	}
	if len(jumps) == 0 {
		return nil, false
	}
	for _, entry := range []string{prerouting, output} {
		if !xtables.Contains(t.Rules[entry], dnatEntry()) {
			problems = append(problems, fmt.Sprintf("nat chain %s lacks the jump to %s", entry, TopLevelDNATChain))
		}
	}
	for _, mp := range ms {
		to := netip.AddrPortFrom(mp.PodIP, mp.PodPort).String()
		if !slices.ContainsFunc(t.Rules[chain], func(r xtables.Rule) bool {
			hk, ok := hostKey(r)
			return ok && hk == mp.Key() && r.Option("--to-destination") == to
		}) {
			problems = append(problems, fmt.Sprintf("nat chain %s (the reference's) has no rule forwarding %v to %s", chain, mp.Key(), to))
		}
		port := strconv.Itoa(int(mp.HostPort))
		if !slices.ContainsFunc(jumps, func(j xtables.Rule) bool {
			return j.Option("-p") == mp.Protocol && slices.Contains(strings.Split(j.Option("--dports"), ","), port)
		}) {
			problems = append(problems, fmt.Sprintf("%s has no jump to %s for %s port %s", TopLevelDNATChain, chain, mp.Protocol, port))
		}
	}
	return problems, true
}

// Conflict returns the first of ms whose host key another attachment's rules forward, or nil: what Add
// would refuse, without changing anything. The nftables backend's ADD asks it for the iptables rules
// the reference left.
func (m *Mapper) Conflict(k firewall.Key, ms []portmap.Mapping) (*portmap.ConflictError, error) {
	byFamily, err := validate(k, ms, portmap.Options{})
	if err != nil {
		return nil, err
	}
	for _, f := range xtables.Families() {
		if len(byFamily[f]) == 0 {
			continue
		}
		t, err := m.read(f)
		if err != nil {
			continue // no such tool or table here: nothing can be in the way
		}
		if c := t.conflict(k, byFamily[f]); c != nil {
			return c, nil
		}
	}
	return nil, nil
}
