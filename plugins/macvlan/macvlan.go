package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/ipamexec"
	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
)

// ifContainer is the macvlan's position in the result, as the reference reports it: the only interface.
const ifContainer = 0

func cmdAdd(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	target, err := netns.Open(args.Netns)
	if err != nil {
		return err
	}
	defer target.Close()

	m := master(n, target)
	ml, err := lookupMaster(n, m)
	if err != nil {
		return err
	}
	mtu, err := hostlink.ResolveMTU(n.MTU, ml.Attrs().MTU)
	if err != nil {
		return conf.Invalid("mtu", "%d is above the MTU of master %q (%d); use at most %d, or omit it for the master's",
			n.MTU, ml.Attrs().Name, ml.Attrs().MTU, ml.Attrs().MTU)
	}

	ctx := context.Background()
	var undo []func()
	// ok is set only on the success path, so no shadowed err can make a failed ADD skip the rollback.
	ok := false
	defer func() {
		if ok {
			return
		}
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}()

	// IPAM first: a bad ipam section or a full range fails before any link exists.
	var ipam *current.Result
	if n.hasL3 {
		if ipam, err = ipamexec.Add(ctx, n.IPAM.Type, args.StdinData); err != nil {
			return err
		}
		undo = append(undo, func() { logErr("rollback: release IP", ipamexec.Del(ctx, n.IPAM.Type, args.StdinData)) })
	}

	attrs := netlink.NewLinkAttrs()
	attrs.MTU = mtu
	attrs.ParentIndex = ml.Attrs().Index
	attrs.HardwareAddr = n.mac
	mv, err := hostlink.CreateInto(target, m, &netlink.Macvlan{LinkAttrs: attrs, Mode: n.mode, BCQueueLen: uint32(n.BcQueueLen)}, args.IfName)
	if err != nil {
		return createError(n, ml, err)
	}
	undo = append(undo, func() { logErr("rollback: remove macvlan", hostlink.Remove(target, args.IfName)) })

	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: args.IfName, Mac: mv.Attrs().HardwareAddr.String(), Sandbox: args.Netns}},
	}
	var l3 *current.Result // nil: L2 only, the link just comes up
	if ipam != nil {
		result.IPs, result.Routes, result.DNS = ipam.IPs, ipam.Routes, ipam.DNS
		for _, ipc := range result.IPs {
			ipc.Interface = current.Int(ifContainer)
		}
		l3 = result
	}
	if err := hostlink.Configure(target, args.IfName, l3, ifContainer, ipcfg.Options{}); err != nil {
		return err
	}
	if d := n.DNS; d.Nameservers != nil || d.Search != nil || d.Options != nil || d.Domain != "" {
		result.DNS = d
	}
	ok = true
	return plugin.PrintResult(result, n.CNIVersion)
}

// master says where to find the configured master.
func master(n *NetConf, pod ns.NetNS) hostlink.Master {
	return hostlink.Master{Name: n.Master, InPod: n.LinkInContainer, Pod: pod}
}

// lookupMaster finds the master and turns "there is none" into a CNI error naming the key.
func lookupMaster(n *NetConf, m hostlink.Master) (netlink.Link, error) {
	l, err := m.Lookup()
	if err == nil {
		return l, nil
	}
	where := "the host's network namespace"
	if n.LinkInContainer {
		where = "the container's network namespace (linkInContainer)"
	}
	switch {
	case errors.Is(err, link.ErrNotFound):
		return nil, conf.Invalid("master", "interface %q does not exist in %s; name an existing interface, or omit \"master\" to use the default route's", n.Master, where)
	case errors.Is(err, hostlink.ErrNoDefaultRoute):
		return nil, conf.Invalid("master", "not set, and %s has no default route to take it from; name the master interface", where)
	}
	return nil, fmt.Errorf("master: %w", err)
}

// createError explains the kernel's refusals that a config can cause.
func createError(n *NetConf, ml netlink.Link, err error) error {
	name := ml.Attrs().Name
	switch {
	case errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EPROTONOSUPPORT):
		return conf.Invalid("mode", "macvlan mode %q on master %q: this kernel does not support it (or macvlan at all): %v", modeName(n.mode), name, err)
	case errors.Is(err, syscall.EBUSY) && n.mode == netlink.MACVLAN_MODE_PASSTHRU:
		return conf.Invalid("mode", "\"passthru\" on master %q: the master already has a macvlan; passthru allows only one: %v", name, err)
	case errors.Is(err, syscall.EINVAL) && !canBeMaster(ml):
		return conf.Invalid("master", "%q is a %s, which cannot carry macvlan links: %v", name, ml.Type(), err)
	}
	return fmt.Errorf("macvlan on master %q: %w", name, err)
}

// canBeMaster reports whether the kernel accepts l as a macvlan master: an Ethernet device (not the
// loopback, not a tunnel).
func canBeMaster(l netlink.Link) bool {
	return l.Attrs().EncapType == "ether"
}

func cmdDel(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	// The macvlan lives only in the container's namespace; a namespace that is gone took it along.
	if args.Netns != "" {
		target, err := netns.Open(args.Netns)
		switch {
		case err == nil:
			err = hostlink.Remove(target, args.IfName)
			target.Close()
			if err != nil {
				return fmt.Errorf("remove %q in %s: %w", args.IfName, args.Netns, err)
			}
		case netns.Gone(err):
		default:
			return err
		}
	}
	if n.hasL3 {
		return ipamexec.Del(context.Background(), n.IPAM.Type, args.StdinData)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	prev, err := conf.CheckPrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	if n.hasL3 {
		if err := ipamexec.Check(context.Background(), n.IPAM.Type, args.StdinData); err != nil {
			return err
		}
	}
	target, err := netns.Open(args.Netns)
	if err != nil {
		return err
	}
	defer target.Close()

	ml, err := lookupMaster(n, master(n, target))
	if err != nil {
		return err
	}
	idx := -1
	for i, intf := range prev.Interfaces {
		if intf.Name == args.IfName && intf.Sandbox == args.Netns {
			idx = i
		}
	}
	if idx < 0 {
		return conf.Invalid("prevResult", "has no interface %q in sandbox %s", args.IfName, args.Netns)
	}
	wantMAC := prev.Interfaces[idx].Mac
	inspect := func(l netlink.Link) error {
		mv, isMacvlan := l.(*netlink.Macvlan)
		if !isMacvlan {
			return fmt.Errorf("%q is a %s, not a macvlan", args.IfName, l.Type())
		}
		if mv.Mode != n.mode {
			return fmt.Errorf("%q is in macvlan mode %q, config says %q", args.IfName, modeName(mv.Mode), modeName(n.mode))
		}
		if mv.ParentIndex != ml.Attrs().Index {
			return fmt.Errorf("%q sits on ifindex %d, not on master %q (ifindex %d)", args.IfName, mv.ParentIndex, ml.Attrs().Name, ml.Attrs().Index)
		}
		if wantMAC != "" && wantMAC != mv.HardwareAddr.String() {
			return fmt.Errorf("%q has MAC %s, the ADD result says %s", args.IfName, mv.HardwareAddr, wantMAC)
		}
		return nil
	}
	if err := hostlink.Verify(target, args.IfName, prev, idx, inspect); err != nil {
		return fmt.Errorf("container %s: %w", args.Netns, err)
	}
	return nil
}

func cmdGC(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	// The links die with their namespaces; only IPAM leases can outlive an attachment.
	if _, err := plugin.ValidAttachments(args.StdinData); err != nil {
		return err
	}
	if n.hasL3 {
		return ipamexec.GC(context.Background(), n.IPAM.Type, args.StdinData)
	}
	return nil
}

func cmdStatus(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	// With linkInContainer the master is in each pod's namespace, which STATUS does not know.
	if !n.LinkInContainer {
		if err := master(n, nil).Ready(); err != nil {
			return conf.NotAvailable("master: %v; ADDs fail until it exists and is up", err)
		}
	}
	if n.hasL3 {
		return ipamexec.Status(context.Background(), n.IPAM.Type, args.StdinData)
	}
	return nil
}

func logErr(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "netloom macvlan: %s: %v\n", what, err)
	}
}
