package main

import (
	"context"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/plugin"
)

// ifContainer is the dummy's position in the result: the only interface.
const ifContainer = 0

// cmdAdd creates the dummy in the pod as steps that are each a fault point, in the reference's order:
// "create" (the pod has no CNI_IFNAME yet, the dummy), "allocate" (IPAM) and "configure" (addresses,
// routes, up). A failure releases the lease and removes the dummy.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	return plugin.AddInPod(args.Netns, n.CNIVersion, func(pod ns.NetNS) (*current.Result, error) {
		return add(n, args, pod)
	})
}

func add(n *NetConf, args *plugin.Args, pod ns.NetNS) (*current.Result, error) {
	var (
		add    plugin.Add
		ctx    = context.Background()
		result *current.Result
	)
	create := func() error {
		if err := hostlink.RequireFree(pod, args.IfName); err != nil {
			return err
		}
		return pod.Do(func(ns.NetNS) error {
			l, err := link.CreateDummy(args.IfName)
			if err != nil {
				return err
			}
			add.OnFailure("remove dummy", func() error { return hostlink.Remove(pod, args.IfName) })
			result = &current.Result{Interfaces: []*current.Interface{{Name: args.IfName, Mac: l.Attrs().HardwareAddr.String(), Sandbox: pod.Path()}}}
			return nil
		})
	}
	allocate := func() error {
		_, err := add.LeaseInto(ctx, n.IPAM.Type, args.StdinData, result, ifContainer)
		return err
	}
	configure := func() error { return hostlink.Configure(pod, args.IfName, result, ifContainer, ipcfg.Options{}) }
	if err := add.Run(plugin.Do("create", create), plugin.Do("allocate", allocate), plugin.Do("configure", configure)); err != nil {
		return nil, err
	}
	result.CNIVersion = current.ImplementedSpecVersion
	plugin.SetDNS(result, n.DNS)
	return result, nil
}
