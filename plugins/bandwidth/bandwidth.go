package main

import (
	"errors"
	"fmt"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/shaping"
)

// ADD caps what the pod receives with a tbf on the host end of its veth, and what it sends by
// redirecting that end's ingress to an ifb device whose tbf caps it; the ifb joins the result. Without
// limits the previous result passes through. Each step is a fault point (pkg/fault); a failed step
// undoes the earlier.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	prev, err := conf.PrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	if prev == nil {
		return conf.Invalid("prevResult", "missing: bandwidth is a chained plugin; list it after the plugin that creates the pod's veth (bridge, ptp)")
	}
	prev.CNIVersion = current.ImplementedSpecVersion
	if !n.shapes() {
		return plugin.PrintResult(prev, n.CNIVersion)
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		host, err := hostEnd(pod, args.IfName, prev)
		if err != nil {
			return err
		}
		a := &adder{n: n, args: args, host: host, result: prev}
		if err := a.Run(
			plugin.Do("ingress", a.ingress),   // tbf (or htb) on the host end: what the pod receives
			plugin.Do("ifb", a.ifb),           // the device what the pod sends is redirected to
			plugin.Do("redirect", a.redirect), // the host end's ingress to the ifb
			plugin.Do("egress", a.egress),     // tbf (or htb) on the ifb: what the pod sends
		); err != nil {
			return err
		}
		return plugin.PrintResult(a.result, n.CNIVersion)
	})
}

// adder carries one ADD through its steps; plugin.Add remembers how to undo each.
type adder struct {
	plugin.Add
	n      *NetConf
	args   *plugin.Args
	host   netlink.Link
	result *current.Result

	ifbLink netlink.Link
}

func (a *adder) ingress() error {
	l := a.n.limits.ingress()
	if !l.Set() {
		return nil
	}
	if err := a.n.ensureShaping(a.host, l, shaping.ToPod); err != nil {
		return fmt.Errorf("%singressRate: %w", a.n.from, err)
	}
	a.OnFailure("remove ingress qdisc", func() error { return shaping.RemoveRoot(a.host) })
	return nil
}

func (a *adder) ifb() error {
	if !a.n.limits.egress().Set() {
		return nil
	}
	name := shaping.IfbName(a.n.Name, a.args.ContainerID)
	qlen := 0 // the reference's: the tbf has its own queue
	if len(a.n.subnets.List) > 0 {
		qlen = shaping.HTBQueueLen
	}
	l, err := shaping.EnsureIfb(name, a.host.Attrs().MTU, qlen, shaping.IfbAlias(a.n.Name, a.args.ContainerID))
	if err != nil {
		return err
	}
	a.OnFailure("remove ifb", func() error { return shaping.RemoveIfb(name) })
	a.ifbLink = l
	a.result.Interfaces = append(a.result.Interfaces, &current.Interface{Name: name, Mac: l.Attrs().HardwareAddr.String()})
	return nil
}

func (a *adder) redirect() error {
	if a.ifbLink == nil {
		return nil
	}
	if err := shaping.EnsureRedirect(a.host, a.ifbLink); err != nil {
		return err
	}
	a.OnFailure("remove ingress redirect", func() error { return shaping.RemoveRedirect(a.host) })
	return nil
}

func (a *adder) egress() error {
	if a.ifbLink == nil {
		return nil
	}
	if err := a.n.ensureShaping(a.ifbLink, a.n.limits.egress(), shaping.FromPod); err != nil {
		return fmt.Errorf("%segressRate: %w", a.n.from, err)
	}
	return nil // the ifb's removal takes its qdisc along
}

// ensureShaping caps what l transmits at lim: a tbf for all of it, or an htb when the configuration
// shapes the traffic of some peers only.
func (n *NetConf) ensureShaping(l netlink.Link, lim shaping.Limit, d shaping.Direction) error {
	if len(n.subnets.List) == 0 {
		return shaping.EnsureTBF(l, shaping.TBFFor(lim))
	}
	return shaping.EnsureHTB(l, shaping.HTBFor(lim, n.subnets, d))
}

// checkShaping is CHECK's side of ensureShaping.
func (n *NetConf) checkShaping(l netlink.Link, lim shaping.Limit, d shaping.Direction) error {
	if len(n.subnets.List) == 0 {
		return shaping.CheckTBF(l, shaping.TBFFor(lim))
	}
	return shaping.CheckHTB(l, shaping.HTBFor(lim, n.subnets, d))
}

// hostEnd finds the host end of the pod's veth ifName, which the previous plugin's result must list as
// a host interface (as the reference requires).
func hostEnd(pod ns.NetNS, ifName string, prev *current.Result) (netlink.Link, error) {
	host, err := vethPeer(pod, ifName)
	if err != nil {
		return nil, conf.Invalid("prevResult", "pod interface %q: %v; bandwidth shapes a pod attached by a veth (bridge, ptp)", ifName, err)
	}
	for _, i := range prev.Interfaces {
		if i.Sandbox == "" && i.Name == host.Attrs().Name {
			return host, nil
		}
	}
	return nil, conf.Invalid("prevResult", "does not list %q, the host end of the pod's %q, among its interfaces", host.Attrs().Name, ifName)
}

// vethPeer returns the host end of the pod's veth ifName: the link of the host's namespace with the
// peer's ifindex, provided it is a veth whose own peer is the pod's link (an ifindex alone could name
// an unrelated link when the peer lives in a third namespace).
func vethPeer(pod ns.NetNS, ifName string) (netlink.Link, error) {
	var podIndex, peer int
	err := pod.Do(func(ns.NetNS) error {
		l, err := link.ByName(ifName)
		if err != nil {
			return err
		}
		podIndex = l.Attrs().Index
		peer, err = link.VethPeerIndex(l)
		return err
	})
	if err != nil {
		return nil, err
	}
	host, err := netlink.LinkByIndex(peer)
	if err != nil {
		return nil, fmt.Errorf("its peer (ifindex %d) is not in the host's namespace: %w", peer, err)
	}
	if back, err := link.VethPeerIndex(host); err != nil || back != podIndex {
		return nil, fmt.Errorf("its peer (ifindex %d) is not in the host's namespace: %q there is not its veth peer", peer, host.Attrs().Name)
	}
	return host, nil
}

// DEL removes the ifb device of the attachment and, while the pod's veth is still there, the root and
// ingress qdiscs on its host end. It succeeds when all of it is already gone; every error is returned, joined.
func cmdDel(n *NetConf, args *plugin.Args) error {
	var errs []error
	if host := hostEndForDel(args); host != nil {
		errs = append(errs, shaping.RemoveRedirect(host), shaping.RemoveRoot(host))
	}
	errs = append(errs, shaping.RemoveIfb(shaping.IfbName(n.Name, args.ContainerID)))
	return errors.Join(errs...)
}

// hostEndForDel is the host end of the pod's veth, or nil when the namespace, the interface or its
// peer is gone (the veth's removal takes the qdiscs along).
func hostEndForDel(args *plugin.Args) netlink.Link {
	if args.Netns == "" {
		return nil
	}
	pod, err := netns.Open(args.Netns)
	if err != nil {
		return nil
	}
	defer pod.Close()
	host, err := vethPeer(pod, args.IfName)
	if err != nil {
		return nil
	}
	return host
}

// CHECK verifies the tbf on the host end of the pod's veth, and the ifb with its tbf and the redirect
// to it, against the limits in force.
func cmdCheck(n *NetConf, args *plugin.Args) error {
	prev, err := conf.CheckPrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		host, err := hostEnd(pod, args.IfName, prev)
		if err != nil {
			return err
		}
		if !n.shapes() {
			return nil
		}
		if l := n.limits.ingress(); l.Set() {
			if err := n.checkShaping(host, l, shaping.ToPod); err != nil {
				return fmt.Errorf("%singressRate: %w", n.from, err)
			}
		}
		if l := n.limits.egress(); l.Set() {
			ifb, err := shaping.Ifb(shaping.IfbName(n.Name, args.ContainerID))
			if err != nil {
				return fmt.Errorf("%segressRate: %w", n.from, err)
			}
			if err := n.checkShaping(ifb, l, shaping.FromPod); err != nil {
				return fmt.Errorf("%segressRate: %w", n.from, err)
			}
			if err := shaping.CheckRedirect(host, ifb); err != nil {
				return fmt.Errorf("%segressRate: %w", n.from, err)
			}
		}
		return nil
	})
}

// GC removes the ifb devices of this network's attachments that the runtime no longer lists: those
// netloom made (their alias names the network) and those without an alias (the reference's) that no
// veth redirects to any more. Their veths went with the pods' namespaces.
func cmdGC(n *NetConf, args *plugin.Args) error {
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for a := range valid {
		keep[shaping.IfbName(n.Name, a.ContainerID)] = true
	}
	stale, err := shaping.Stale(n.Name, func(name string) bool { return keep[name] })
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range stale {
		errs = append(errs, shaping.RemoveIfb(name))
	}
	return errors.Join(errs...)
}

// STATUS: bandwidth needs nothing on the node to be ready.
func cmdStatus(*NetConf, *plugin.Args) error { return nil }
