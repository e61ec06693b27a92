package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/netloom/netloom/pkg/addrholder"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/portmap/iptables"
	"github.com/netloom/netloom/pkg/portmap/nftables"
	"github.com/netloom/netloom/pkg/portmap/reference"
)

// This file is what lets netloom's portmap take over a node whose pods the reference plugin set up
// (see "Switching a node" in README.md): DEL, GC and CHECK also see the reference's rules of an
// attachment, and ADD takes over a host port whose owner, of either suite, no longer exists.

// maxTakeovers bounds how many dead owners one ADD evicts (one per host port it asks for, at most).
const maxTakeovers = 16

// ownerGone tells whether c's owner no longer exists: no network namespace but the asking pod's
// (netnsPath) holds the address its forwarding goes to. An owner whose address is unknown counts as
// alive. When alive, c.HeldIn says where.
func ownerGone(c *portmap.ConflictError, netnsPath string) bool {
	if !c.PodIP.IsValid() {
		return false
	}
	where, held, err := addrholder.Holder(c.PodIP, netnsPath)
	if err != nil || held {
		c.HeldIn = where
		return false
	}
	return true
}

// addTakingOver is the rules step of ADD: it removes the reference's forwarding of the same host ports
// whose pods are gone, refuses one whose pod lives, then adds k's mappings, evicting each dead owner
// the backend reports in the way.
func addTakingOver(n *NetConf, k firewall.Key, ms []portmap.Mapping, netnsPath string) error {
	if err := takeOverReference(n.backend, k, ms, netnsPath); err != nil {
		return err
	}
	m := newMapper(n.backend)
	for evicted := 0; ; evicted++ {
		err := m.Add(k, ms, n.opts)
		var c *portmap.ConflictError
		if !errors.As(err, &c) || evicted == maxTakeovers || !ownerGone(c, netnsPath) {
			return err
		}
		ev, ok := m.(portmap.Evicter)
		if !ok {
			return err
		}
		plugin.LogError(fmt.Sprintf("portmap %s", k), fmt.Errorf("taking host port %v over from %s, whose pod address %s no longer exists", c.Key, c.Owner, c.PodIP))
		if err := ev.Evict(c); err != nil {
			return fmt.Errorf("take host port %v over from %s: %w", c.Key, c.Owner, err)
		}
	}
}

// takeOverReference handles the host ports of ms that rules the configured backend does not see
// forward: the reference's nftables rules, and with the nftables backend the iptables rules (the
// reference's default backend). Those of a gone pod are removed; one of a live pod is a conflict.
func takeOverReference(backend string, k firewall.Key, ms []portmap.Mapping, netnsPath string) error {
	rules, err := reference.ListNFTables()
	if err != nil && nftables.Available() {
		return fmt.Errorf("read the reference portmap's nftables rules: %w", err)
	}
	dead := map[string]bool{}
	for _, r := range rules {
		if r.Masq || r.ContainerID == k.ContainerID || dead[r.ContainerID] {
			continue
		}
		for _, m := range ms {
			if m.Key() != r.Key || m.PodIP.Is4() != r.Target.Addr().Is4() {
				continue
			}
			c := &portmap.ConflictError{Key: r.Key, Owner: fmt.Sprintf("container %s (the reference plugin's nftables rules)", r.ContainerID), PodIP: r.Target.Addr()}
			if !ownerGone(c, netnsPath) {
				return c
			}
			dead[r.ContainerID] = true
		}
	}
	if len(dead) > 0 {
		plugin.LogError(fmt.Sprintf("portmap %s", k), fmt.Errorf("removing the reference plugin's nftables forwarding of gone containers %v", keys(dead)))
		if _, err := reference.RemoveNFTables(func(r reference.Rule) bool { return !dead[r.ContainerID] }); err != nil {
			return err
		}
	}
	if backend != firewall.BackendNFTables || !reference.IPTablesMayHold() {
		return nil
	}
	ipt := iptables.New()
	for evicted := 0; evicted < maxTakeovers; evicted++ {
		c, err := ipt.Conflict(k, ms)
		if err != nil || c == nil {
			return err
		}
		if !ownerGone(c, netnsPath) {
			return c
		}
		plugin.LogError(fmt.Sprintf("portmap %s", k), fmt.Errorf("taking host port %v over from %s (iptables), whose pod address %s no longer exists", c.Key, c.Owner, c.PodIP))
		if err := ipt.Evict(c); err != nil {
			return fmt.Errorf("take host port %v over from %s: %w", c.Key, c.Owner, err)
		}
	}
	return nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// removeReference is DEL's share of the reference's rules: its nftables rules of the container (the
// reference's DEL removes them by container ID alone) and, when the configured backend is nftables,
// the iptables rules of the attachment. A backend that does not work on this node held nothing.
func removeReference(backend string, k firewall.Key) error {
	var errs []error
	if err := reference.RemoveContainer(k.ContainerID); err != nil && nftables.Available() {
		errs = append(errs, fmt.Errorf("the reference's nftables rules: %w", err))
	}
	if backend == firewall.BackendNFTables && reference.IPTablesMayHold() {
		if err := iptables.New().Remove(k, nil); err != nil && iptables.Available() {
			errs = append(errs, fmt.Errorf("the iptables rules: %w", err))
		}
	}
	return errors.Join(errs...)
}

// gcReference removes the reference's nftables rules of containers that are not among valid and whose
// pod address no network namespace holds: its rules name no network, so a container missing from this
// network's list may be another network's, and only a gone pod is safe to clean up after.
func gcReference(valid map[conf.Attachment]bool) error {
	live := map[string]bool{}
	for a := range valid {
		live[a.ContainerID] = true
	}
	gone := map[netip.Addr]bool{}
	_, err := reference.RemoveNFTables(func(r reference.Rule) bool {
		a := r.Target.Addr()
		if live[r.ContainerID] || !a.IsValid() {
			return true
		}
		if g, seen := gone[a]; seen {
			return !g
		}
		_, held, err := addrholder.Holder(a, "")
		gone[a] = err == nil && !held
		return !gone[a]
	})
	if err != nil && nftables.Available() {
		return err
	}
	return nil
}

// checkReference verifies the reference's rules of k's mappings, for an attachment the reference set
// up: its nftables rules of the container, or its iptables chain. found is false when the reference
// holds nothing for k.
func checkReference(k firewall.Key, ms []portmap.Mapping, snat bool) (problem error, found bool) {
	if rules, err := reference.ListNFTables(); err == nil {
		if p, ok := reference.CheckNFTables(rules, k.ContainerID, ms, snat); ok {
			return joinProblems(p), true
		}
	}
	if iptables.Available() {
		p, ok, err := iptables.New().CheckReference(k, ms)
		if err != nil {
			return err, true
		}
		if ok {
			return joinProblems(p), true
		}
	}
	return nil, false
}

func joinProblems(p []string) error {
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "; "))
}
