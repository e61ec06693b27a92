package main

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/forward"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/xtables"
)

// records is where the per-attachment records live that GC and a DEL without prevResult work from.
func records() forward.Store { return forward.Store{Dir: forward.DefaultStateDir} }

// ADD: record the pod's addresses, open the firewall for them, then add the ingress policy's isolation
// rules for the pod's bridge. Each step is a fault point (pkg/fault); a failed step undoes the earlier.
// The result is prevResult, unchanged.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	prev, err := conf.PrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	if prev == nil {
		return conf.Invalid("prevResult", "missing: firewall is a chained plugin; list it after the plugin that gives the pod its addresses (bridge, ptp)")
	}
	addrs, bridge, be, err := resolve(n, prev)
	if err != nil {
		return err
	}
	k := firewall.KeyFor(n.Name, args)
	var a plugin.Add
	err = a.Run(
		plugin.Do("record", func() error {
			if err := records().Save(k, addrs); err != nil {
				return err
			}
			a.OnFailure("forget the attachment", func() error { return records().Remove(k) })
			return nil
		}),
		plugin.Do("open", func() error {
			if err := be.Open(addrs); err != nil {
				return fmt.Errorf("open the firewall for %v: %w", addrs, err)
			}
			a.OnFailure("close the firewall", func() error { return be.Close(addrs) })
			return nil
		}),
		// The isolation rules are the bridge's, shared with its other pods: nothing to undo.
		plugin.Do("isolate", func() error {
			if !n.policy.Isolates() {
				return nil
			}
			if err := isolator(n).Isolate(addrs, bridge, n.policy); err != nil {
				return fmt.Errorf("ingressPolicy %q for bridge %q: %w", n.policy, bridge, err)
			}
			return nil
		}),
	)
	if err != nil {
		return err
	}
	return plugin.PrintResult(prev, n.CNIVersion)
}

// resolve returns what ADD and CHECK act on: prevResult's addresses, the bridge an isolating ingress
// policy applies to ("" for the open policy) and the backend the configuration names.
func resolve(n *NetConf, prev *current.Result) ([]netip.Addr, string, forward.Backend, error) {
	addrs, err := podAddrs(prev)
	if err != nil {
		return nil, "", nil, err
	}
	bridge, err := isolatedBridge(n, prev)
	if err != nil {
		return nil, "", nil, err
	}
	be, err := backendFor(n)
	if err != nil {
		return nil, "", nil, err
	}
	return addrs, bridge, be, nil
}

// podAddrs returns every address of the result, as the reference opens them all whatever their
// interface.
func podAddrs(res *current.Result) ([]netip.Addr, error) {
	var out []netip.Addr
	for i, ipc := range res.IPs {
		p, ok := addr.FromIPNet(ipc.Address)
		if !ok {
			return nil, conf.Invalid(fmt.Sprintf("prevResult.ips[%d].address", i), "%v is not an IP prefix", ipc.Address)
		}
		if a := p.Addr().Unmap(); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// isolatedBridge returns the bridge an isolating ingress policy applies to: the result's first
// interface, as the bridge plugin reports it. The open policy needs none.
func isolatedBridge(n *NetConf, res *current.Result) (string, error) {
	if !n.policy.Isolates() {
		return "", nil
	}
	if len(res.Interfaces) == 0 || res.Interfaces[0] == nil || res.Interfaces[0].Name == "" {
		return "", conf.Invalid("ingressPolicy", "%q needs the bridge's name as the first interface of prevResult; chain \"firewall\" after \"bridge\", or use \"open\"", n.policy)
	}
	return res.Interfaces[0].Name, nil
}

// backendFor returns the backend the configuration names; without one, firewalld when it answers on
// the system bus and iptables otherwise, as the reference chooses.
func backendFor(n *NetConf) (forward.Backend, error) {
	switch n.Backend {
	case backendFirewalld:
		return forward.DialFirewalld(n.zone)
	case backendIPTables:
		return iptablesFor(n), nil
	case backendNFTables:
		return forward.NFTables{}, nil
	}
	if fw, err := forward.DialFirewalld(n.zone); err == nil {
		return fw, nil
	}
	return iptablesFor(n), nil
}

func iptablesFor(n *NetConf) *forward.IPTables {
	return forward.NewIPTables(xtables.Config{}, n.admin)
}

// isolator returns what installs the isolation rules: nftables with that backend, otherwise iptables
// (also with firewalld, as the reference does).
func isolator(n *NetConf) forward.Isolator {
	if n.Backend == backendNFTables {
		return forward.NFTables{}
	}
	return iptablesFor(n)
}

// usable is what both the iptables and the nftables backend can say about themselves.
type usable interface{ Usable() error }

// DEL removes the pod rules of the addresses in prevResult and in the attachment's record, then the
// record. Chains, jumps, the admin chain and the bridge's isolation rules stay (other pods use them).
// A backend that is not there (no iptables tools, no firewalld) had nothing to remove.
func cmdDel(n *NetConf, args *plugin.Args) error {
	k := firewall.KeyFor(n.Name, args)
	recorded, err := records().Load(k)
	if err != nil {
		return err
	}
	addrs := recorded
	prev, err := conf.PrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	if prev != nil {
		fromPrev, err := podAddrs(prev)
		if err != nil {
			return err
		}
		for _, a := range fromPrev {
			if !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) > 0 {
		if err := closeFor(n, addrs); err != nil {
			return err
		}
	}
	return records().Remove(k)
}

// closeFor removes addrs' rules through the configured backend. A backend that cannot run here
// installed nothing: its failure is logged, not returned, so DEL succeeds on such a node.
func closeFor(n *NetConf, addrs []netip.Addr) error {
	be, err := backendFor(n)
	if err != nil {
		plugin.LogError("DEL: backend unavailable, nothing to remove", err)
		return nil
	}
	err = be.Close(addrs)
	if u, ok := be.(usable); ok && err != nil && !xtables.IsLockTimeout(err) {
		if uerr := u.Usable(); uerr != nil {
			plugin.LogError("DEL: backend unusable here, nothing to remove", errors.Join(err, uerr))
			return nil
		}
	}
	return err
}

// CHECK verifies that the firewall is open for every address of prevResult and, with an isolating
// ingress policy, that the bridge's isolation rules are in place.
func cmdCheck(n *NetConf, args *plugin.Args) error {
	prev, err := conf.CheckPrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	addrs, bridge, be, err := resolve(n, prev)
	if err != nil {
		return err
	}
	if err := be.Check(addrs); err != nil {
		return err
	}
	if n.policy.Isolates() {
		return isolator(n).CheckIsolation(addrs, bridge, n.policy)
	}
	return nil
}

// GC removes the pod rules of every recorded attachment of the network that the runtime no longer
// lists, except addresses a listed attachment holds now, and forgets those attachments.
func cmdGC(n *NetConf, args *plugin.Args) error {
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	recorded, err := records().List(n.Name)
	if err != nil {
		return err
	}
	gone, stale := forward.Stale(recorded, valid)
	if len(stale) > 0 {
		if err := closeFor(n, stale); err != nil {
			return err
		}
	}
	var errs []error
	for _, a := range gone {
		errs = append(errs, records().Remove(firewall.Key{Network: n.Name, ContainerID: a.ContainerID, IfName: a.IfName}))
	}
	return errors.Join(errs...)
}

// STATUS reports whether the backend can serve an ADD: firewalld answers, iptables reads the filter
// table, or nf_tables answers; with an isolating ingress policy, also what installs its rules.
func cmdStatus(n *NetConf, args *plugin.Args) error {
	be, err := backendFor(n)
	if err != nil {
		return err
	}
	checks := []any{be}
	if n.policy.Isolates() {
		checks = append(checks, isolator(n))
	}
	for _, c := range checks {
		if u, ok := c.(usable); ok {
			if err := u.Usable(); err != nil {
				return conf.NotAvailable("firewall: %v", err)
			}
		}
	}
	return nil
}
