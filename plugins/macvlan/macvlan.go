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
	ml, err := m.Find()
	if err != nil {
		return err
	}
	mtu, err := hostlink.MTUFor(n.MTU, ml)
	if err != nil {
		return err
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

	if err := hostlink.RequireFree(target, args.IfName); err != nil {
		return err
	}
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

// createError adds macvlan's own refusal to the shared ones: passthru allows one macvlan per master.
func createError(n *NetConf, ml netlink.Link, err error) error {
	if errors.Is(err, syscall.EBUSY) && n.mode == netlink.MACVLAN_MODE_PASSTHRU {
		return conf.Invalid("mode", "\"passthru\" on master %q: the master already has a macvlan; passthru allows only one: %v", ml.Attrs().Name, err)
	}
	return hostlink.CreateError("macvlan", modeName(n.mode), ml, err)
}

func cmdDel(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	// The macvlan lives only in the container's namespace; a namespace that is gone took it along.
	if err := hostlink.RemoveAt(args.Netns, args.IfName); err != nil {
		return err
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

	ml, err := master(n, target).Find()
	if err != nil {
		return err
	}
	return hostlink.CheckAttachment(target, args.IfName, prev, ml, func(l netlink.Link) error {
		mv, isMacvlan := l.(*netlink.Macvlan)
		if !isMacvlan {
			return fmt.Errorf("%q is a %s, not a macvlan", args.IfName, l.Type())
		}
		if mv.Mode != n.mode {
			return fmt.Errorf("%q is in macvlan mode %q, config says %q", args.IfName, modeName(mv.Mode), modeName(n.mode))
		}
		return nil
	})
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
		if err := master(n, nil).Status(); err != nil {
			return err
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
