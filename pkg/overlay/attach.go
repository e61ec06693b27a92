package overlay

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/neigh"
	"github.com/netloom/netloom/pkg/route"
	"github.com/netloom/netloom/pkg/sysctl"
)

// The pod's next hop on a routed veth: a link-local address nobody holds, resolved by a permanent
// neighbour entry to the host end's MAC (Calico's scheme, without proxy ARP).
var (
	PodGatewayV4 = netip.MustParseAddr("169.254.1.1")
	PodGatewayV6 = netip.MustParseAddr("fe80::1")
)

// hostVethPrefix starts the name of a pod's host-side veth.
const hostVethPrefix = "nlo"

// RoutedVeth is a pod attached by a routed veth: no bridge, the pod's addresses as host routes.
type RoutedVeth struct {
	HostName     string
	HostMAC      net.HardwareAddr
	ContainerMAC net.HardwareAddr
}

// PodConfig is what goes inside the pod: its addresses as /32 and /128, the link-local next hop and
// default routes through it, and extra routes (e.g. from IPAM) through the same next hop.
func PodConfig(ips []netip.Addr, extra []netip.Prefix) ipcfg.Config {
	var c ipcfg.Config
	link := netlink.SCOPE_LINK
	var v4, v6 bool
	for _, ip := range ips {
		c.Addrs = append(c.Addrs, netip.PrefixFrom(ip, ip.BitLen()))
		if ip.Is4() && !v4 {
			v4 = true
			c.GW4 = PodGatewayV4
			c.Routes = append(c.Routes,
				route.Route{Dst: netip.PrefixFrom(PodGatewayV4, 32), Scope: &link},
				route.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: PodGatewayV4})
		} else if ip.Is6() && !v6 {
			v6 = true
			c.GW6 = PodGatewayV6
			c.Routes = append(c.Routes, route.Route{Dst: netip.MustParsePrefix("::/0"), GW: PodGatewayV6})
		}
	}
	for _, p := range extra {
		if p.Bits() == 0 {
			continue // the default routes are already there
		}
		switch {
		case p.Addr().Is4() && v4:
			c.Routes = append(c.Routes, route.Route{Dst: p, GW: PodGatewayV4})
		case p.Addr().Is6() && v6:
			c.Routes = append(c.Routes, route.Route{Dst: p, GW: PodGatewayV6})
		}
	}
	return c
}

// AttachRoutedVeth creates a veth pair into pod as ifName with the given MTU, configures the pod end
// with c (see PodConfig), and routes each pod address to the host end. Forwarding is turned on for the
// families in use. On failure the pair is removed, which takes every route and entry with it.
func AttachRoutedVeth(pod ns.NetNS, ifName string, mtu int, c ipcfg.Config) (*RoutedVeth, error) {
	veth, err := link.CreateVethInto(pod, link.VethSpec{ContainerIfName: ifName, MTU: mtu, HostPrefix: hostVethPrefix})
	if err != nil {
		return nil, err
	}
	host := veth.Host
	rv := &RoutedVeth{HostName: host.Attrs().Name, HostMAC: host.Attrs().HardwareAddr}
	ok := false
	defer func() {
		if !ok {
			_ = link.Remove(rv.HostName)
		}
	}()
	// The host end needs no IPv6 address of its own, and DAD on its link-local one would only delay it.
	_ = sysctl.Set(sysctl.IPv6Conf(rv.HostName, "accept_dad"), "0")
	if err := link.SetUp(host); err != nil {
		return nil, err
	}
	err = pod.Do(func(ns.NetNS) error {
		if err := ipcfg.Apply(ifName, c, ipcfg.Options{}); err != nil {
			return err
		}
		l, err := link.ByName(ifName)
		if err != nil {
			return err
		}
		rv.ContainerMAC = l.Attrs().HardwareAddr
		for _, gw := range []netip.Addr{c.GW4, c.GW6} {
			if gw.IsValid() {
				if err := neigh.Replace(l, neigh.Entry{IP: gw, MAC: rv.HostMAC}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("configure %q in %s: %w", ifName, pod.Path(), err)
	}
	scope := netlink.SCOPE_LINK
	for _, p := range c.Addrs {
		fam := 4
		if p.Addr().Is6() {
			fam = 6
		}
		if err := sysctl.EnableForwarding(fam); err != nil {
			return nil, fmt.Errorf("enable forwarding: %w", err)
		}
		// A permanent entry for the pod spares the first packet towards it an ARP or NDP round trip.
		if err := neigh.Replace(host, neigh.Entry{IP: p.Addr(), MAC: rv.ContainerMAC}); err != nil {
			return nil, err
		}
		if err := route.Add(host, route.Route{Dst: p, Scope: &scope}); err != nil {
			return nil, err
		}
	}
	ok = true
	return rv, nil
}

// VerifyRoutedVeth reports the first thing of a routed-veth attachment that is not as AttachRoutedVeth
// left it: the host end, the routes to the pod through it, and inside pod the addresses and routes.
func VerifyRoutedVeth(pod ns.NetNS, ifName, hostName string, c ipcfg.Config) error {
	host, err := link.ByName(hostName)
	if err != nil {
		return fmt.Errorf("host end of the pod's veth: %w", err)
	}
	if _, ok := host.(*netlink.Veth); !ok {
		return fmt.Errorf("host end %q is a %s, not a veth", hostName, host.Type())
	}
	var toPod []route.Route
	for _, p := range c.Addrs {
		toPod = append(toPod, route.Route{Dst: p})
	}
	if err := route.Verify(host, toPod); err != nil {
		return err
	}
	return pod.Do(func(ns.NetNS) error { return ipcfg.Verify(ifName, c) })
}
