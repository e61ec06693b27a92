package main

import (
	"context"
	"errors"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/plugin"
)

// ifContainer is the tap's position in the result: the only interface.
const ifContainer = 0

// spec is the tap the configuration asks for. Like the reference, a tap with both owner and group
// (and no SELinux label) carries virtio-net headers (IFF_VNET_HDR); the others are made as
// `ip tuntap add mode tap` makes them (IFF_NO_PI).
func spec(n *NetConf, ifName string) link.TapSpec {
	return link.TapSpec{Name: ifName, MultiQueue: n.MultiQueue, Owner: n.Owner, Group: n.Group, MTU: n.MTU, MAC: n.mac,
		VnetHdr: n.Owner != nil && n.Group != nil && n.SelinuxContext == "", SELinuxLabel: n.SelinuxContext}
}

// cmdAdd creates the tap in the pod as steps that are each a fault point, in the reference's order:
// "create" (the pod has no CNI_IFNAME yet, the tap with its MTU and MAC, on the bridge), "allocate"
// (IPAM) and "configure" (addresses, routes, up). A failure releases the lease and removes the tap.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	return plugin.AddInPod(args.Netns, n.CNIVersion, func(pod ns.NetNS) (*current.Result, error) {
		return add(n, args, pod)
	})
}

func add(n *NetConf, args *plugin.Args, pod ns.NetNS) (*current.Result, error) {
	var (
		add    plugin.Add
		ctx    = context.Background()
		l3     *current.Result
		result = &current.Result{CNIVersion: current.ImplementedSpecVersion}
	)
	create := func() error {
		if err := hostlink.RequireFree(pod, args.IfName); err != nil {
			return err
		}
		return pod.Do(func(ns.NetNS) error {
			var br netlink.Link
			if n.Bridge != "" {
				var err error
				if br, err = link.ByName(n.Bridge); errors.Is(err, link.ErrNotFound) {
					return conf.Invalid("bridge", "%q does not exist in the container's network namespace; the tap joins a bridge there", n.Bridge)
				} else if err != nil {
					return err
				}
			}
			tap, err := link.CreateTap(spec(n, args.IfName))
			if errors.Is(err, link.ErrSELinuxOff) {
				return conf.Invalid("selinuxContext", "%v; leave the key out", err)
			}
			if err != nil {
				return err
			}
			add.OnFailure("remove tap", func() error { return hostlink.Remove(pod, args.IfName) })
			if br != nil {
				if err := netlink.LinkSetMaster(tap, br); err != nil {
					return conf.Invalid("bridge", "cannot add tap %q to %q (a %s): %v", args.IfName, n.Bridge, br.Type(), err)
				}
			}
			result.Interfaces = []*current.Interface{{Name: args.IfName, Mac: tap.Attrs().HardwareAddr.String(), Sandbox: pod.Path()}}
			return nil
		})
	}
	allocate := func() (err error) {
		l3, err = add.LeaseInto(ctx, n.IPAM.Type, args.StdinData, result, ifContainer)
		return err
	}
	configure := func() error {
		if l3 == nil {
			return hostlink.Configure(pod, args.IfName, nil, ifContainer, ipcfg.Options{})
		}
		return hostlink.Configure(pod, args.IfName, result, ifContainer, ipcfg.Options{})
	}
	if err := add.Run(plugin.Do("create", create), plugin.Do("allocate", allocate), plugin.Do("configure", configure)); err != nil {
		return nil, err
	}
	plugin.SetDNS(result, n.DNS)
	return result, nil
}
