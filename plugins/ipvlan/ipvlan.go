package main

import (
	"context"
	"fmt"
	"os"

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

// ifContainer is the ipvlan's position in the result, as the reference reports it: the only interface.
const ifContainer = 0

func cmdAdd(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	fromPrev, err := n.addresses()
	if err != nil {
		return err
	}
	target, err := netns.Open(args.Netns)
	if err != nil {
		return err
	}
	defer target.Close()

	ml, err := findMaster(n, target)
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
	l3 := n.prev
	if !fromPrev {
		if l3, err = ipamexec.Add(ctx, n.IPAM.Type, args.StdinData); err != nil {
			return err
		}
		undo = append(undo, func() { logErr("rollback: release IP", ipamexec.Del(ctx, n.IPAM.Type, args.StdinData)) })
	}

	attrs := netlink.NewLinkAttrs()
	attrs.MTU = mtu
	attrs.ParentIndex = ml.Attrs().Index
	iv, err := hostlink.CreateInto(target, master(n, ml.Attrs().Name, target), &netlink.IPVlan{LinkAttrs: attrs, Mode: n.mode}, args.IfName)
	if err != nil {
		return hostlink.CreateError("ipvlan", modeName(n.mode), ml, err)
	}
	undo = append(undo, func() { logErr("rollback: remove ipvlan", hostlink.Remove(target, args.IfName)) })

	// In the chained form the previous plugin's addresses move to the ipvlan, which replaces its
	// interfaces in the result, as the reference does.
	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: args.IfName, Mac: iv.Attrs().HardwareAddr.String(), Sandbox: args.Netns}},
		IPs:        l3.IPs,
		Routes:     l3.Routes,
		DNS:        l3.DNS,
	}
	for _, ipc := range result.IPs {
		ipc.Interface = current.Int(ifContainer)
	}
	if err := hostlink.Configure(target, args.IfName, result, ifContainer, ipcfg.Options{}); err != nil {
		return err
	}
	if d := n.DNS; d.Nameservers != nil || d.Search != nil || d.Options != nil || d.Domain != "" {
		result.DNS = d
	}
	ok = true
	return plugin.PrintResult(result, n.CNIVersion)
}

// master says where to find the master called name.
func master(n *NetConf, name string, pod ns.NetNS) hostlink.Master {
	return hostlink.Master{Name: name, InPod: n.LinkInContainer, Pod: pod}
}

// findMaster looks up ADD's master: "master", the chained form's prevResult interface, or the default
// route's interface.
func findMaster(n *NetConf, pod ns.NetNS) (netlink.Link, error) {
	name, err := n.masterName()
	if err != nil {
		return nil, err
	}
	ml, err := master(n, name, pod).Find()
	if err != nil && n.Master == "" && name != "" && conf.Code(err) == conf.CodeInvalidConfig {
		return nil, conf.Invalid("prevResult", "its interface %q, which the chained ipvlan takes as master, does not exist; set \"master\" (%v)", name, err)
	}
	return ml, err
}

func cmdDel(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	// The ipvlan lives only in the container's namespace; a namespace that is gone took it along.
	if err := hostlink.RemoveAt(args.Netns, args.IfName); err != nil {
		return err
	}
	// In the chained form without ipam the addresses belong to the previous plugin, which releases them.
	if n.IPAM.Type != "" {
		return ipamexec.Del(context.Background(), n.IPAM.Type, args.StdinData)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	prev, err := conf.CheckPrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	if n.IPAM.Type != "" {
		if err := ipamexec.Check(context.Background(), n.IPAM.Type, args.StdinData); err != nil {
			return err
		}
	}
	target, err := netns.Open(args.Netns)
	if err != nil {
		return err
	}
	defer target.Close()

	// CHECK's prevResult is the ipvlan's own result, so a master the chained form took from the ADD's
	// prevResult is no longer known: without "master" and without ipam (the chained form) the master
	// is not compared. Without "master" but with ipam, ADD used the default route's interface.
	var ml netlink.Link
	if n.Master != "" || n.IPAM.Type != "" {
		if ml, err = master(n, n.Master, target).Find(); err != nil {
			return err
		}
	}
	return hostlink.CheckAttachment(target, args.IfName, prev, ml, func(l netlink.Link) error {
		iv, isIPVlan := l.(*netlink.IPVlan)
		if !isIPVlan {
			return fmt.Errorf("%q is a %s, not an ipvlan", args.IfName, l.Type())
		}
		if iv.Mode != n.mode {
			return fmt.Errorf("%q is in ipvlan mode %q, config says %q", args.IfName, modeName(iv.Mode), modeName(n.mode))
		}
		return nil
	})
}

func cmdGC(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	// The links die with their namespaces; only IPAM leases can outlive an attachment.
	if _, err := plugin.ValidAttachments(args.StdinData); err != nil {
		return err
	}
	if n.IPAM.Type != "" {
		return ipamexec.GC(context.Background(), n.IPAM.Type, args.StdinData)
	}
	return nil
}

func cmdStatus(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	// With linkInContainer the master is in each pod's namespace, and in the chained form (no master,
	// no ipam) it comes with each ADD's prevResult: STATUS knows neither.
	chained := n.Master == "" && n.IPAM.Type == ""
	if !n.LinkInContainer && !chained {
		if err := master(n, n.Master, nil).Status(); err != nil {
			return err
		}
	}
	if n.IPAM.Type != "" {
		return ipamexec.Status(context.Background(), n.IPAM.Type, args.StdinData)
	}
	return nil
}

func logErr(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "netloom ipvlan: %s: %v\n", what, err)
	}
}
