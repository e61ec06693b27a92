package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/ipmasq"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/ipamexec"
	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/route"
	"github.com/netloom/netloom/pkg/sysctl"
)

// Positions of the interfaces in the result, as the reference ptp reports them.
const (
	ifHost      = 0
	ifContainer = 1
)

// ADD: lease the pod's addresses, create the veth pair, give the pod its addresses with every route
// through the gateway and the host end the gateway addresses with a host route to each pod address,
// then masquerade when asked. Each step is a fault point (pkg/fault); a failed step undoes the earlier.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		a := &adder{n: n, args: args, pod: pod, ctx: context.Background()}
		if err := a.Run(
			plugin.Do("allocate", a.allocate), // IPAM, in the background: the lease needs no link
			plugin.Do("plug", a.plug),         // the veth pair, then the lease
			plugin.Together(
				plugin.Do("configure", a.configure),   // addresses and routes on both ends, forwarding
				plugin.Do("masquerade", a.masquerade), // ipMasq
			),
		); err != nil {
			return err
		}
		return plugin.PrintResult(a.result, n.CNIVersion)
	})
}

// adder carries one ADD through its steps; plugin.Add remembers how to undo each.
type adder struct {
	plugin.Add
	n    *NetConf
	args *plugin.Args
	pod  ns.NetNS
	ctx  context.Context

	lease    func() (*current.Result, error) // started by allocate, waited for by plug
	result   *current.Result
	hostName string
}

func (a *adder) allocate() error {
	if err := hostlink.RequireFree(a.pod, a.args.IfName); err != nil {
		return err
	}
	a.lease = a.StartLease(a.ctx, a.n.IPAM.Type, a.args.StdinData, ifContainer)
	return nil
}

func (a *adder) plug() error {
	veth, err := link.CreateVethInto(a.pod, link.VethSpec{ContainerIfName: a.args.IfName, MTU: a.n.MTU})
	if err != nil {
		return err
	}
	a.hostName = veth.Host.Attrs().Name
	a.OnFailure("remove veth", func() error { return link.Remove(a.hostName) })
	res, err := a.lease()
	if err != nil {
		return err
	}
	if len(res.IPs) == 0 {
		return conf.Invalid("ipam", "plugin %q returned no address", a.n.IPAM.Type)
	}
	for i, ipc := range res.IPs {
		if ipc.Gateway == nil {
			return conf.Invalid("ipam", "plugin %q returned %s (ips[%d]) without a gateway; ptp puts the gateway on the host end of the veth, so the range needs one", a.n.IPAM.Type, &ipc.Address, i)
		}
	}
	res.CNIVersion = current.ImplementedSpecVersion
	plugin.SetDNS(res, a.n.DNS)
	res.Interfaces = []*current.Interface{
		{Name: a.hostName, Mac: veth.Host.Attrs().HardwareAddr.String()},
		{Name: a.args.IfName, Sandbox: a.args.Netns},
	}
	a.result = res
	return nil
}

func (a *adder) configure() error {
	pc, err := podConfig(a.result, ifContainer)
	if err != nil {
		return conf.Invalid("ipam", "%v", err)
	}
	// The host end first: until both ends are up the pod's link has no carrier, its IPv6 addresses stay
	// tentative and a route naming one as source is refused.
	// Without DAD on its link-local address the host end can resolve the pod's at once when forwarding.
	_ = sysctl.Set(sysctl.IPv6Conf(a.hostName, "accept_dad"), "0")
	host, err := link.ByName(a.hostName)
	if err != nil {
		return err
	}
	if err := link.SetUp(host); err != nil {
		return err
	}
	err = a.pod.Do(func(ns.NetNS) error {
		if err := ipcfg.Apply(a.args.IfName, pc, ipcfg.Options{NoPrefixRoute: true}); err != nil {
			return err
		}
		l, err := link.ByName(a.args.IfName)
		if err != nil {
			return err
		}
		a.result.Interfaces[ifContainer].Mac = l.Attrs().HardwareAddr.String()
		return nil
	})
	if err != nil {
		return fmt.Errorf("configure %q in %s: %w", a.args.IfName, a.args.Netns, err)
	}
	hc, err := hostConfig(a.result, ifContainer)
	if err != nil {
		return conf.Invalid("ipam", "%v", err)
	}
	return configureHost(host, hc)
}

func (a *adder) masquerade() error {
	if !a.n.IPMasq {
		return nil
	}
	m, err := ipmasq.ForConfig(a.n.masqBE)
	if err != nil {
		return err
	}
	k := firewall.KeyFor(a.n.Name, a.args)
	if err := m.Ensure(k, ipmasq.ResultPrefixes(a.result)); err != nil {
		return fmt.Errorf("ipMasq: %w", err)
	}
	a.OnFailure("remove masquerade", func() error { return m.Remove(k) })
	return nil
}

// ptpAddr is one pod address with its gateway: the address the host end takes.
type ptpAddr struct {
	pod netip.Prefix
	gw  netip.Addr
}

// ptpAddrs returns the addresses of res on interface ifIndex with their gateways; ptp needs a gateway
// for each.
func ptpAddrs(res *current.Result, ifIndex int) ([]ptpAddr, error) {
	var out []ptpAddr
	for i, ipc := range res.IPs {
		if ipc.Interface != nil && *ipc.Interface != ifIndex {
			continue
		}
		p, ok := addr.FromIPNet(ipc.Address)
		if !ok {
			return nil, fmt.Errorf("ips[%d].address %v is not an IP prefix", i, ipc.Address)
		}
		gw, ok := netip.AddrFromSlice(ipc.Gateway)
		if !ok {
			return nil, fmt.Errorf("ips[%d] (%s) has no gateway", i, p)
		}
		out = append(out, ptpAddr{pod: p, gw: gw.Unmap()})
	}
	return out, nil
}

// podConfig is what goes inside the pod, as the reference ptp lays it out: each address with its prefix
// length but without the kernel's subnet route, a link route to its gateway, the subnet through the
// gateway (for IPv4 both with the address as source) (so even neighbours in the subnet are reached through the host), then IPAM's routes.
func podConfig(res *current.Result, ifIndex int) (ipcfg.Config, error) {
	pairs, err := ptpAddrs(res, ifIndex)
	if err != nil {
		return ipcfg.Config{}, err
	}
	fromIPAM, err := ipcfg.FromResult(res, ifIndex)
	if err != nil {
		return ipcfg.Config{}, err
	}
	c := ipcfg.Config{Addrs: fromIPAM.Addrs, GW4: fromIPAM.GW4, GW6: fromIPAM.GW6}
	scope := netlink.SCOPE_LINK
	for _, a := range pairs {
		var src netip.Addr
		if a.pod.Addr().Is4() {
			// IPv6 refuses a source address that is still tentative, which a new pod's may be.
			src = a.pod.Addr()
		}
		c.Routes = appendNew(c.Routes,
			route.Route{Dst: hostPrefix(a.gw), Scope: &scope, Src: src},
			route.Route{Dst: a.pod.Masked(), GW: a.gw, Src: src})
	}
	c.Routes = appendNew(c.Routes, fromIPAM.Routes...)
	return c, nil
}

// hostConfig is the host end of the pod's veth: each gateway as a host address, and a host route to
// each pod address.
func hostConfig(res *current.Result, ifIndex int) (ipcfg.Config, error) {
	pairs, err := ptpAddrs(res, ifIndex)
	if err != nil {
		return ipcfg.Config{}, err
	}
	var c ipcfg.Config
	scope := netlink.SCOPE_LINK
	for _, a := range pairs {
		if gw := hostPrefix(a.gw); !slices.Contains(c.Addrs, gw) {
			c.Addrs = append(c.Addrs, gw)
		}
		c.Routes = appendNew(c.Routes, route.Route{Dst: hostPrefix(a.pod.Addr()), Scope: &scope})
	}
	return c, nil
}

// hostPrefix is a as a /32 or /128.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// appendNew appends the routes of add that rs does not hold yet.
func appendNew(rs []route.Route, add ...route.Route) []route.Route {
	for _, r := range add {
		if !slices.ContainsFunc(rs, func(h route.Route) bool { return h.String() == r.String() }) {
			rs = append(rs, r)
		}
	}
	return rs
}

// configureHost gives the host end (up already) its gateway addresses and its routes to the pod, and
// turns on forwarding. Not ipcfg.Apply: that one also enables IPv6 on "lo", which is the node's here. The
// gateway addresses skip DAD: they must answer the pod's first neighbour solicitation.
func configureHost(host netlink.Link, c ipcfg.Config) error {
	for _, gw := range c.Addrs {
		if err := sysctl.EnableForwardingFor(gw.Addr()); err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
		if err := addr.AddNoDAD(host, gw); err != nil {
			return err
		}
	}
	for _, r := range c.Routes {
		if err := route.Add(host, r); err != nil {
			return err
		}
	}
	return nil
}

// DEL removes the pod's veth (its routes go with it; a namespace already gone took it along), releases
// the lease and removes the masquerade rules. A failure of one part does not stop the others: every
// error is returned, joined.
func cmdDel(n *NetConf, args *plugin.Args) error {
	errs := []error{hostlink.RemoveAt(args.Netns, args.IfName)}
	errs = append(errs, ipamexec.Del(context.Background(), n.IPAM.Type, args.StdinData))
	if n.IPMasq {
		errs = append(errs, ipmasq.RemoveFor(n.masqBE, firewall.KeyFor(n.Name, args), ipmasq.DelHint(&n.NetConf)))
	}
	return errors.Join(errs...)
}

// CHECK verifies the lease, the pod's veth (MAC, addresses, routes), the host end (gateway addresses,
// routes to the pod) and the masquerade rules against the ADD result.
func cmdCheck(n *NetConf, args *plugin.Args) error {
	prev, err := conf.CheckPrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	if err := ipamexec.Check(context.Background(), n.IPAM.Type, args.StdinData); err != nil {
		return err
	}
	idx, err := hostlink.ResultInterface(prev, args.IfName, args.Netns)
	if err != nil {
		return err
	}
	pc, err := podConfig(prev, idx)
	if err != nil {
		return conf.Invalid("prevResult", "%v", err)
	}
	hc, err := hostConfig(prev, idx)
	if err != nil {
		return conf.Invalid("prevResult", "%v", err)
	}
	pod, err := netns.Open(args.Netns)
	if err != nil {
		return err
	}
	defer pod.Close()
	peer, err := verifyPod(pod, args.IfName, prev.Interfaces[idx].Mac, pc)
	if err != nil {
		return fmt.Errorf("container %s: %w", args.Netns, err)
	}
	if err := verifyHost(peer, hc); err != nil {
		return err
	}
	if n.IPMasq {
		return ipmasq.CheckFor(n.masqBE, firewall.KeyFor(n.Name, args), ipmasq.ResultPrefixes(prev))
	}
	return nil
}

// verifyPod checks the pod end and returns the ifindex of its peer, the host end.
func verifyPod(pod ns.NetNS, ifName, wantMAC string, c ipcfg.Config) (int, error) {
	var peer int
	err := pod.Do(func(ns.NetNS) error {
		var err error
		peer, err = ipcfg.VerifyVeth(ifName, wantMAC, c)
		return err
	})
	return peer, err
}

// verifyHost checks the host end, found by its ifindex: the pod's veth peer.
func verifyHost(index int, c ipcfg.Config) error {
	host, err := netlink.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("host end of the pod's veth (ifindex %d): %w", index, err)
	}
	if err := ipcfg.Verify(host.Attrs().Name, c); err != nil {
		return fmt.Errorf("host end: %w", err)
	}
	return nil
}

// GC releases the leases and masquerade rules of attachments the runtime no longer lists (the veths die
// with their pods' namespaces). Both run; every error is returned.
func cmdGC(n *NetConf, args *plugin.Args) error {
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	var errs []error
	if n.IPMasq {
		errs = append(errs, ipmasq.GCFor(n.masqBE, n.Name, valid))
	}
	errs = append(errs, ipamexec.GC(context.Background(), n.IPAM.Type, args.StdinData))
	return errors.Join(errs...)
}

// STATUS reports the IPAM plugin's status: ptp needs nothing on the node but addresses.
func cmdStatus(n *NetConf, args *plugin.Args) error {
	return ipamexec.Status(context.Background(), n.IPAM.Type, args.StdinData)
}
