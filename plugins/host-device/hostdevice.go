package main

import (
	"context"
	"errors"
	"fmt"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/ipamexec"
	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
)

// hostSysfs is where the node's sysfs is mounted.
const hostSysfs = sysfs("/sys")

// ifContainer is the device's position in the result: the only interface.
const ifContainer = 0

// dpdkMode says whether the device is bound to a userspace driver, so there is no interface to move:
// for a PCI device (pciBusID, or a deviceID that is one) its driver decides, as in the reference;
// otherwise the config's DPDKMode.
func dpdkMode(n *NetConf, src source) (bool, error) {
	if src.pci == "" {
		return n.DPDKMode, nil
	}
	return hostSysfs.userspaceDriver(src.field, src.pci)
}

// cmdAdd moves the device into the pod under CNI_IFNAME and configures IPAM's addresses on it, as
// steps that are each a fault point, in the reference's order: "move" (find the device, the pod has no
// CNI_IFNAME yet, into the pod, renamed, its name saved in its alias, up), "allocate" (IPAM: the device
// is in the pod, so dhcp can talk on it) and "configure" (addresses, routes). A failure releases the
// lease and gives the device back.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	src, err := hostSysfs.locate(n)
	if err != nil {
		return err
	}
	dpdk, err := dpdkMode(n, src)
	if err != nil {
		return err
	}
	return plugin.AddInPod(args.Netns, n.CNIVersion, func(pod ns.NetNS) (*current.Result, error) {
		return add(n, args, pod, src, dpdk)
	})
}

func add(n *NetConf, args *plugin.Args, pod ns.NetNS, src source, dpdk bool) (*current.Result, error) {
	var (
		add    plugin.Add
		ctx    = context.Background()
		l3     *current.Result
		result = &current.Result{CNIVersion: current.ImplementedSpecVersion,
			Interfaces: []*current.Interface{{Name: args.IfName, Sandbox: pod.Path()}}}
	)
	move := func() error {
		if dpdk {
			return nil
		}
		host, err := hostSysfs.find(src)
		if err != nil {
			return err
		}
		if err := hostlink.RequireFree(pod, args.IfName); err != nil {
			return err
		}
		orig := host.Attrs().Name
		moved, err := link.MoveInto(host, pod, args.IfName)
		if err != nil {
			return fmt.Errorf("device %q: %w", orig, err)
		}
		add.OnFailure("give "+orig+" back to the host", func() error { _, err := link.MoveOut(pod, args.IfName); return err })
		result.Interfaces[ifContainer].Mac = moved.Attrs().HardwareAddr.String()
		return nil
	}
	allocate := func() (err error) {
		l3, err = add.LeaseInto(ctx, n.IPAM.Type, args.StdinData, result, ifContainer)
		return err
	}
	configure := func() error {
		if dpdk || l3 == nil {
			return nil
		}
		return hostlink.Configure(pod, args.IfName, result, ifContainer, ipcfg.Options{})
	}
	if err := add.Run(plugin.Do("move", move), plugin.Do("allocate", allocate), plugin.Do("configure", configure)); err != nil {
		return nil, err
	}
	plugin.SetDNS(result, n.DNS)
	return result, nil
}

// cmdDel releases the lease, then gives the device back to the host under the name its alias holds
// (netloom's ADD or the reference's saved it there): the reference's order, which lets dhcp send its
// release through the device. A pod without CNI_IFNAME (a DPDK device, a second DEL) or a namespace
// that is gone (which returned a physical device to the host itself) leaves only the lease to release.
// Every failure is reported.
func cmdDel(n *NetConf, args *plugin.Args) error {
	var errs []error
	if n.IPAM.Type != "" {
		errs = append(errs, ipamexec.Del(context.Background(), n.IPAM.Type, args.StdinData))
	}
	if args.Netns != "" {
		pod, err := netns.Open(args.Netns)
		switch {
		case err == nil:
			if _, err := link.MoveOut(pod, args.IfName); err != nil && !errors.Is(err, link.ErrNotFound) {
				if errors.Is(err, link.ErrNoOriginalName) {
					err = fmt.Errorf("%w: it was not moved in by host-device; leaving it in the container", err)
				}
				errs = append(errs, err)
			}
			pod.Close()
		case !netns.Gone(err):
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cmdCheck verifies the lease, then (unless the device is a DPDK one) that the pod's CNI_IFNAME has the
// ADD result's MAC, addresses and routes.
func cmdCheck(n *NetConf, args *plugin.Args) error {
	prev, err := conf.CheckPrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	if n.IPAM.Type != "" {
		if err := ipamexec.Check(context.Background(), n.IPAM.Type, args.StdinData); err != nil {
			return err
		}
	}
	src, err := hostSysfs.locate(n)
	if err != nil {
		return err
	}
	if dpdk, err := dpdkMode(n, src); err != nil || dpdk {
		return err
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		return hostlink.CheckAttachment(pod, args.IfName, prev, nil, n.Inspect)
	})
}
