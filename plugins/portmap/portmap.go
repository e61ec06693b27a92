package main

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/portmap/iptables"
	"github.com/netloom/netloom/pkg/portmap/nftables"
)

// available tells whether a backend works on this node: for nftables, whether it can add forwarding
// (a kernel before 6.5 refuses its rules).
func available(backend string) bool {
	switch backend {
	case firewall.BackendNFTables:
		return nftables.Usable()
	case firewall.BackendIPTables:
		return iptables.Available()
	}
	return false
}

func newMapper(backend string) portmap.Mapper {
	if backend == firewall.BackendIPTables {
		return iptables.New()
	}
	return nftables.New()
}

func cmdAdd(n *NetConf, args *plugin.Args) error {
	if n.prev == nil {
		return conf.Invalid("prevResult", "portmap runs chained after the plugin that gives the pod its addresses (e.g. bridge); put it after that plugin in the conflist")
	}
	if len(n.entries) == 0 {
		return plugin.PrintResult(n.prev, n.CNIVersion)
	}
	pod := podAddrs(n.prev, args.IfName)
	if len(pod) == 0 {
		return conf.Invalid("prevResult", "has no address on the pod interface %q to forward ports to", args.IfName)
	}
	ms := mappings(n.entries, pod)
	k := firewall.KeyFor(n.Name, args)
	var add plugin.Add
	err := add.Run(
		// The backend's Add is all or nothing, and nothing after it can fail the ADD: no undo.
		plugin.Do("rules", func() error {
			err := addTakingOver(n, k, ms, args.Netns)
			var conflict *portmap.ConflictError
			if errors.As(err, &conflict) {
				return conf.Invalid("runtimeConfig.portMappings", "%v", conflict)
			}
			if err != nil {
				return fmt.Errorf("portmap %s (%s backend): %w", k, n.backend, err)
			}
			return nil
		}),
		// Only 127.0.0.1:hostPort depends on it; like the reference, a pod the node has no route to
		// (yet) does not fail the ADD.
		plugin.Do("localnet", func() error {
			if !n.opts.SNAT {
				return nil
			}
			for _, p := range pod {
				plugin.LogError(fmt.Sprintf("portmap %s", k), portmap.EnableLocalnet(p.Addr()))
			}
			return nil
		}),
		// A pod reaching its own host port comes back in by the bridge port it left by; informative,
		// as the bridge plugin's hairpinMode does the same when set.
		plugin.Do("hairpin", func() error {
			if n.opts.SNAT {
				enableHairpin(n, args, k)
			}
			return nil
		}),
		// After the rules exist, so a UDP client's next packet makes a new flow that the rules catch.
		// Informative only, as in the reference: the ports are forwarded either way.
		plugin.Do("conntrack", func() error {
			plugin.LogError(fmt.Sprintf("portmap %s", k), portmap.FlushStaleUDP(ms))
			return nil
		}),
	)
	if err != nil {
		return err
	}
	return plugin.PrintResult(n.prev, n.CNIVersion)
}

// cmdDel removes the attachment's forwarding. It needs neither prevResult nor the kernel state to be
// intact: the backend finds what the attachment owns by its key.
//
// The two removals run at once. Each nftables one ends by waiting for the kernel to free what it deleted
// (an RCU grace period, pkg/nftnl), most of a DEL: the reference's, usually only a look, is done
// within that wait instead of after it.
func cmdDel(n *NetConf, args *plugin.Args) error {
	k := firewall.KeyFor(n.Name, args)
	return plugin.AtOnce(
		func() error {
			if err := newMapper(n.backend).Remove(k, hostKeys(n.entries)); err != nil {
				return fmt.Errorf("portmap %s (%s backend): remove: %w", k, n.backend, err)
			}
			return nil
		},
		func() error {
			if err := removeReference(n.backend, k); err != nil {
				return fmt.Errorf("portmap %s: remove the reference plugin's forwarding: %w", k, err)
			}
			return nil
		},
	)
}

func cmdCheck(n *NetConf, args *plugin.Args) error {
	if n.prev == nil {
		return conf.Invalid("prevResult", "CHECK needs the result of the ADD; the runtime must pass it")
	}
	if len(n.entries) == 0 {
		return nil
	}
	pod := podAddrs(n.prev, args.IfName)
	k := firewall.KeyFor(n.Name, args)
	ms := mappings(n.entries, pod)
	err := newMapper(n.backend).Check(k, ms, n.opts)
	if err == nil {
		return nil
	}
	// A pod the reference plugin set up before the node switched keeps the reference's rules.
	if problem, found := checkReference(k, ms, n.opts.SNAT); found {
		if problem != nil {
			return fmt.Errorf("portmap %s (set up by the reference plugin): %w", k, problem)
		}
		return nil
	}
	return fmt.Errorf("portmap %s (%s backend): %w", k, n.backend, err)
}

// cmdGC removes the forwarding of every attachment of this network that the runtime no longer lists,
// in both backends: the attachment may have been made while the network used the other one.
func cmdGC(args *plugin.Args) error {
	var nc types.NetConf
	if err := conf.Decode(args.StdinData, &nc); err != nil {
		return err
	}
	if err := conf.ValidateFileComponent("name", nc.Name); err != nil {
		return err
	}
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range []string{firewall.BackendNFTables, firewall.BackendIPTables} {
		if !available(b) {
			continue
		}
		if err := newMapper(b).GC(nc.Name, valid); err != nil {
			errs = append(errs, fmt.Errorf("portmap gc %q (%s backend): %w", nc.Name, b, err))
		}
	}
	if err := gcReference(valid); err != nil {
		errs = append(errs, fmt.Errorf("portmap gc %q (the reference plugin's nftables rules): %w", nc.Name, err))
	}
	return errors.Join(errs...)
}

// cmdStatus fails while the configured backend cannot work on this node.
func cmdStatus(n *NetConf, args *plugin.Args) error {
	if !available(n.backend) {
		return conf.NotAvailable("portmap: the %s backend does not work on this node (kernel or tools missing); install it or set \"backend\" to the other one", n.backend)
	}
	return nil
}
