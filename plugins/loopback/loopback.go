package main

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
)

// loName is the only interface this plugin touches; CNI_IFNAME is ignored, as in the reference plugin.
const loName = "lo"

// loMAC is what the result reports as lo's hardware address.
const loMAC = "00:00:00:00:00:00"

// parseArgs parses a command's configuration.
func parseArgs(args *plugin.Args) (*types.NetConf, error) { return parseConf(args.StdinData) }

// parseConf reads the network config. loopback has no keys of its own; a prevResult (when chained
// after another plugin) must parse in the config's cniVersion, since ADD passes it through.
func parseConf(stdin []byte) (*types.NetConf, error) {
	var nc types.NetConf
	if err := conf.Decode(stdin, &nc); err != nil {
		return nil, err
	}
	if _, err := conf.PrevResult(&nc); err != nil {
		return nil, err
	}
	return &nc, nil
}

// cmdAdd sets lo up and reports it with its first IPv4 and IPv6 address. Chained after another
// plugin, it passes that plugin's result through unchanged instead.
func cmdAdd(nc *types.NetConf, args *plugin.Args) error {
	var v4, v6 []netlink.Addr
	// Bringing lo up is the only change: no undo, an up lo is harmless and the runtime's DEL brings it down.
	var add plugin.Add
	err := add.Run(plugin.Do("up", func() error {
		return netns.With(args.Netns, func(pod ns.NetNS) error {
			err := pod.Do(func(ns.NetNS) error {
				lo, err := link.ByName(loName)
				if err != nil {
					return err
				}
				if err := link.SetUp(lo); err != nil {
					return err
				}
				if v4, err = loopbackAddrs(lo, netlink.FAMILY_V4); err != nil {
					return err
				}
				v6, err = loopbackAddrs(lo, netlink.FAMILY_V6)
				return err
			})
			if err != nil {
				return fmt.Errorf("netns %s: %w", args.Netns, err)
			}
			return nil
		})
	}))
	if err != nil {
		return err
	}

	if nc.PrevResult != nil {
		return plugin.PrintResult(nc.PrevResult, nc.CNIVersion)
	}
	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: loName, Mac: loMAC, Sandbox: args.Netns}},
	}
	for _, family := range [][]netlink.Addr{v4, v6} {
		if len(family) > 0 {
			result.IPs = append(result.IPs, &current.IPConfig{Interface: current.Int(0), Address: *family[0].IPNet})
		}
	}
	return plugin.PrintResult(result, nc.CNIVersion)
}

// loopbackAddrs lists lo's addresses of one family and refuses a non-loopback one: a lo that carries
// a routable address is not something this plugin should report as a loopback.
func loopbackAddrs(lo netlink.Link, family int) ([]netlink.Addr, error) {
	as, err := netlinksafe.AddrList(lo, family)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", loName, err)
	}
	for _, a := range as {
		if !a.IP.IsLoopback() {
			return nil, fmt.Errorf("%s carries the non-loopback address %s", loName, a.IPNet)
		}
	}
	return as, nil
}

// cmdDel sets lo down. A namespace that is already gone (or none given) has nothing left to undo.
func cmdDel(args *plugin.Args) error {
	if args.Netns == "" {
		return nil
	}
	target, err := netns.Open(args.Netns)
	if netns.Gone(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer target.Close()
	err = target.Do(func(ns.NetNS) error {
		lo, err := link.ByName(loName)
		if err != nil {
			return err
		}
		return link.SetDown(lo)
	})
	if err != nil {
		return fmt.Errorf("netns %s: %w", args.Netns, err)
	}
	return nil
}

// cmdCheck verifies that lo is up.
func cmdCheck(_ *types.NetConf, args *plugin.Args) error {
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			lo, err := link.ByName(loName)
			if err != nil {
				return fmt.Errorf("netns %s: %w", args.Netns, err)
			}
			if lo.Attrs().Flags&net.FlagUp == 0 {
				return fmt.Errorf("netns %s: %s is down", args.Netns, loName)
			}
			return nil
		})
	})
}

// cmdStatus always succeeds: loopback needs nothing on the node to serve an ADD.
func cmdStatus(*plugin.Args) error { return nil }

// cmdGC has nothing to collect: loopback keeps no state outside the pod's namespace, which goes away
// with the pod.
func cmdGC(*plugin.Args) error { return nil }
