package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/types"
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
	"github.com/netloom/netloom/pkg/sysctl"
)

// Positions of the interfaces in the result, as the reference bridge reports them.
const (
	ifBridge    = 0
	ifHost      = 1
	ifContainer = 2
)

// portUpTimeout bounds the wait for the host end of the veth to report carrier; normally it is up on
// the first look.
const portUpTimeout = 2500 * time.Millisecond

func cmdAdd(n *NetConf, args *plugin.Args) error {
	target, err := netns.Open(args.Netns)
	if err != nil {
		return err
	}
	defer target.Close()

	a := &adder{n: n, args: args, target: target, ctx: context.Background()}
	// A failed step rolls back what the earlier ones made for this pod, and the bridge when this ADD
	// created it and no other pod joined it since. host-local and static allocate while the links are
	// made, and the pod's configuration, the masquerade (an iptables-restore) and the spoof check go at
	// once: each waits on another process or a kernel commit, and none needs what the others make.
	if err := a.Run(
		plugin.Do("plug", a.plug),         // bridge, veth pair, port settings; a node-local lease starts
		plugin.Do("allocate", a.allocate), // IPAM, after the pod's link exists (the reference's order: dhcp talks on it)
		plugin.Together(
			plugin.Do("spoofCheck", a.spoofCheck),                 // macspoofchk
			plugin.Do("configureContainer", a.configureContainer), // addresses, routes, link up inside the pod
			plugin.Do("masquerade", a.masquerade),                 // ipMasq
		),
		plugin.Do("setGateways", a.setGateways), // gateway addresses on the bridge, forwarding
		plugin.Do("finish", a.finish),           // wait for the port, refresh MACs, dns
	); err != nil {
		return err
	}
	return plugin.PrintResult(a.result, n.CNIVersion)
}

// adder carries one ADD through its steps; plugin.Add remembers how to undo each.
type adder struct {
	plugin.Add
	n      *NetConf
	args   *plugin.Args
	target ns.NetNS
	ctx    context.Context

	lease    func() (*current.Result, error) // a node-local lease started by plug; nil until then
	br       *netlink.Bridge
	hostName string
	mac      net.HardwareAddr
	gws      []netip.Prefix // bridge gateway addresses, with isGateway
	result   *current.Result
}

func (a *adder) allocate() error {
	if !a.n.hasL3 {
		return nil
	}
	if a.lease == nil {
		a.lease = a.StartLease(a.ctx, a.n.IPAM.Type, a.args.StdinData, ifContainer)
	}
	res, err := a.lease()
	if err != nil {
		return err
	}
	a.result.IPs, a.result.Routes, a.result.DNS = res.IPs, res.Routes, res.DNS
	// Before the container is configured: this fills in gateways and the default routes it installs.
	a.gws = applyGateways(a.result, a.n)
	return nil
}

func (a *adder) plug() error {
	n := a.n
	if err := hostlink.RequireFree(a.target, a.args.IfName); err != nil {
		return err
	}
	if n.hasL3 && ipamexec.NodeLocal(n.IPAM.Type) {
		// Nothing of the lease depends on the links: it is allocated while they are made. (After the
		// check above, so that an ADD refused for a name the pod already has never touches the lease
		// of the attachment that holds it.)
		a.lease = a.StartLease(a.ctx, n.IPAM.Type, a.args.StdinData, ifContainer)
	}
	br, created, err := link.EnsureBridge(link.BridgeSpec{
		Name:          n.Bridge,
		MTU:           n.MTU,
		Promisc:       n.PromiscMode,
		VlanFiltering: n.Vlan != 0 || len(n.trunk) > 0,
	})
	if created {
		// IPAM runs after the bridge exists: a failed first ADD must not leave a bridge nobody uses.
		a.OnFailure("remove bridge "+n.Bridge, func() error { return link.RemoveBridgeIfUnused(n.Bridge) })
	}
	if errors.Is(err, link.ErrNotBridge) {
		return conf.Invalid("bridge", "%v", err)
	}
	if err != nil {
		return fmt.Errorf("bridge %q: %w", n.Bridge, err)
	}
	a.br = br
	// Choose the MAC now, so the spoof-check rule and the result need no lookup inside the container.
	if a.mac = n.mac; a.mac == nil {
		if a.mac, err = link.RandomMAC(); err != nil {
			return err
		}
	}
	veth, err := link.CreateVethInto(a.target, link.VethSpec{
		ContainerIfName: a.args.IfName,
		ContainerMAC:    a.mac,
		MTU:             n.MTU,
		Master:          br,
	})
	if err != nil {
		return err
	}
	a.hostName = veth.Host.Attrs().Name
	a.OnFailure("remove veth", func() error { return link.Remove(a.hostName) })

	if err := link.AttachPort(br, veth.Host, link.PortSpec{
		Hairpin:             n.HairpinMode,
		Isolated:            n.PortIsolation,
		Vlan:                n.Vlan,
		Trunk:               n.trunk,
		PreserveDefaultVlan: n.PreserveDefaultVlan,
	}); err != nil {
		return err
	}
	if err := link.SetUp(veth.Host); err != nil {
		return err
	}
	a.result = &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: br.Name, Mac: br.HardwareAddr.String()},
			{Name: a.hostName, Mac: veth.Host.Attrs().HardwareAddr.String()},
			{Name: a.args.IfName, Mac: a.mac.String(), Sandbox: a.args.Netns},
		},
	}
	return nil
}

func (a *adder) spoofCheck() error {
	if !a.n.MacSpoofChk {
		return nil
	}
	sc := newSpoofChecker(a.hostName, a.mac, a.args)
	if err := sc.Setup(); err != nil {
		return fmt.Errorf("macspoofchk: %w", err)
	}
	a.OnFailure("macspoofchk", sc.Teardown)
	return nil
}

func (a *adder) configureContainer() error {
	if a.n.DisableContainerInterface {
		return nil
	}
	var cfg ipcfg.Config
	if a.n.hasL3 {
		var err error
		if cfg, err = ipcfg.FromResult(a.result, ifContainer); err != nil {
			return err
		}
	}
	err := a.target.Do(func(ns.NetNS) error {
		if !a.n.hasL3 {
			l, err := link.ByName(a.args.IfName)
			if err != nil {
				return err
			}
			return link.SetUp(l)
		}
		return ipcfg.Apply(a.args.IfName, cfg, ipcfg.Options{EnableDAD: a.n.EnableDad})
	})
	if err != nil {
		return fmt.Errorf("configure %q in %s: %w", a.args.IfName, a.args.Netns, err)
	}
	return nil
}

func (a *adder) setGateways() error {
	if !a.n.hasL3 {
		return nil
	}
	gws := a.gws
	if len(gws) == 0 {
		return nil
	}
	gwIf, err := gatewayLink(a.br, a.n, a.result)
	if err != nil {
		return err
	}
	for _, gw := range gws {
		if err := addr.EnsureGateway(gwIf, gw, a.n.ForceAddress); err != nil {
			return conf.Invalid("isGateway", "%v", err)
		}
		if err := sysctl.EnableForwardingFor(gw.Addr()); err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
	}
	return nil
}

func (a *adder) masquerade() error {
	if !a.n.hasL3 || !a.n.IPMasq {
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

func (a *adder) finish() error {
	if !a.n.DisableContainerInterface {
		host, err := link.WaitOperUp(a.hostName, portUpTimeout)
		if err != nil {
			return fmt.Errorf("bridge port: %w", err)
		}
		a.result.Interfaces[ifHost].Mac = host.Attrs().HardwareAddr.String()
	}
	// The bridge's MAC can change when its first port joins or its address is set.
	br, err := link.Bridge(a.n.Bridge)
	if err != nil {
		return err
	}
	a.result.Interfaces[ifBridge].Mac = br.HardwareAddr.String()
	plugin.SetDNS(a.result, a.n.DNS)
	return nil
}

// applyGateways fills in each IP's gateway (the subnet's first address when IPAM gave none and the
// bridge is the gateway), points every IP at the container interface, adds a default route per family
// when isDefaultGateway asks and none is there, and returns the bridge addresses to set.
func applyGateways(result *current.Result, n *NetConf) []netip.Prefix {
	var gws []netip.Prefix
	haveDefault := map[bool]bool{} // by is-IPv4
	for _, r := range result.Routes {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 && r.GW != nil {
			haveDefault[r.Dst.IP.To4() != nil] = true
		}
	}
	for _, ipc := range result.IPs {
		ipc.Interface = current.Int(ifContainer)
		p, ok := addr.FromIPNet(ipc.Address)
		if !ok {
			continue
		}
		if ipc.Gateway == nil && n.IsGateway {
			ipc.Gateway = p.Masked().Addr().Next().AsSlice()
		}
		v4 := p.Addr().Is4()
		if n.IsDefaultGateway && !haveDefault[v4] {
			dst := net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
			if v4 {
				dst = net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
			}
			result.Routes = append(result.Routes, &types.Route{Dst: dst, GW: ipc.Gateway})
			haveDefault[v4] = true
		}
		if n.IsGateway && ipc.Gateway != nil {
			if gw, ok := netip.AddrFromSlice(ipc.Gateway); ok {
				gws = append(gws, netip.PrefixFrom(gw.Unmap(), p.Bits()))
			}
		}
	}
	return gws
}

// gatewayLink is where gateway addresses go: the bridge, or with "vlan" the bridge's VLAN interface
// (a veth pair named <bridge>.<vlan> with one end on the bridge as an access port of that VLAN).
func gatewayLink(br *netlink.Bridge, n *NetConf, result *current.Result) (netlink.Link, error) {
	if n.Vlan == 0 {
		return br, nil
	}
	l, err := link.EnsureVlanGateway(br, n.Vlan, n.PreserveDefaultVlan)
	if err != nil {
		return nil, fmt.Errorf("vlan %d gateway interface: %w", n.Vlan, err)
	}
	result.Interfaces = append(result.Interfaces, &current.Interface{Name: l.Attrs().Name, Mac: l.Attrs().HardwareAddr.String()})
	return l, nil
}

// cmdDel releases the lease, removes the masquerade rules and the spoof check, and the pod's veth: the
// lease goes first, as in the reference, when the IPAM plugin may talk on the link (dhcp), so it can
// send its release through it; with host-local or static all go at once. Every failure is reported,
// and the veth is removed even after one.
func cmdDel(n *NetConf, args *plugin.Args) error {
	ctx := context.Background()

	// The lease, the masquerade rules and the spoof check are independent, and each waits mostly on
	// another process or a kernel commit: they run at once. (This is the plugin process in the node's
	// namespace, so every thread, and every command they run, is in it.)
	var steps []func() error
	if n.hasL3 {
		steps = append(steps, func() error { return ipamexec.Del(ctx, n.IPAM.Type, args.StdinData) })
	}
	if n.IPMasq {
		hint := ipmasq.DelHint(&n.NetConf) // read before the steps run at once
		steps = append(steps, func() error { return ipmasq.RemoveFor(n.masqBE, firewall.KeyFor(n.Name, args), hint) })
	}
	if n.MacSpoofChk {
		steps = append(steps, func() error {
			if err := newSpoofChecker("", nil, args).Teardown(); err != nil {
				return fmt.Errorf("macspoofchk: %w", err)
			}
			return nil
		})
	}
	// The container side of the veth: deleting it deletes the host end too. A namespace that is
	// already gone took the veth with it. The deletion waits out the kernel's RCU grace periods (tens
	// of ms on a busy node), so it runs alongside the other steps unless the IPAM plugin may still talk
	// on the link (dhcp's release goes through it).
	removeVeth := func() error { return hostlink.RemoveAt(args.Netns, args.IfName) }
	if !n.hasL3 || ipamexec.NodeLocal(n.IPAM.Type) {
		return plugin.AtOnce(append(steps, removeVeth)...)
	}
	return errors.Join(plugin.AtOnce(steps...), removeVeth())
}

func cmdCheck(n *NetConf, args *plugin.Args) error {
	prev, err := conf.CheckPrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if n.hasL3 {
		if err := ipamexec.Check(ctx, n.IPAM.Type, args.StdinData); err != nil {
			return err
		}
	}
	target, err := netns.Open(args.Netns)
	if err != nil {
		return err
	}
	defer target.Close()

	br, err := link.Bridge(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if (br.Promisc != 0) != n.PromiscMode {
		return fmt.Errorf("bridge %q: promiscuous mode is %v, config says %v", br.Name, br.Promisc != 0, n.PromiscMode)
	}

	idx, err := hostlink.ResultInterface(prev, args.IfName, args.Netns)
	if err != nil {
		return err
	}
	cfg, err := ipcfg.FromResult(prev, idx)
	if err != nil {
		return conf.Invalid("prevResult", "%v", err)
	}
	var peer int
	if err := target.Do(func(ns.NetNS) error {
		l, err := link.ByName(args.IfName)
		if err != nil {
			return err
		}
		if want := prev.Interfaces[idx].Mac; want != "" && want != l.Attrs().HardwareAddr.String() {
			return fmt.Errorf("%q has MAC %s, the ADD result says %s", args.IfName, l.Attrs().HardwareAddr, want)
		}
		if peer, err = link.VethPeerIndex(l); err != nil {
			return err
		}
		return ipcfg.Verify(args.IfName, cfg)
	}); err != nil {
		return fmt.Errorf("container %s: %w", args.Netns, err)
	}
	host, err := netlink.LinkByIndex(peer)
	if err != nil {
		return fmt.Errorf("host end of %q (ifindex %d): %w", args.IfName, peer, err)
	}
	if host.Attrs().MasterIndex != br.Index {
		return fmt.Errorf("host end %q of %q is not a port of bridge %q", host.Attrs().Name, args.IfName, br.Name)
	}
	if n.hasL3 && n.IPMasq {
		if err := ipmasq.CheckFor(n.masqBE, firewall.KeyFor(n.Name, args), ipmasq.ResultPrefixes(prev)); err != nil {
			return err
		}
	}
	return nil
}

func cmdGC(n *NetConf, args *plugin.Args) error {
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	var errs []error
	if n.IPMasq {
		errs = append(errs, ipmasq.GCFor(n.masqBE, n.Name, valid))
	}
	if n.hasL3 {
		errs = append(errs, ipamexec.GC(context.Background(), n.IPAM.Type, args.StdinData))
	}
	return errors.Join(errs...)
}

func cmdStatus(n *NetConf, args *plugin.Args) error {
	if n.hasL3 {
		return ipamexec.Status(context.Background(), n.IPAM.Type, args.StdinData)
	}
	return nil
}
