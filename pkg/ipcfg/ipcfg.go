// Package ipcfg applies an IPAM result to an interface inside a container and verifies it later: the
// shared last step of every attachment plugin (bridge, macvlan, ipvlan, the overlays). Call its functions
// inside the container's namespace.
package ipcfg

import (
	"fmt"
	"net/netip"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/route"
	"github.com/netloom/netloom/pkg/sysctl"
)

// Options tunes how addresses are brought up.
type Options struct {
	// EnableDAD runs IPv6 duplicate address detection (and waits for it) instead of turning it off;
	// the bridge plugin's "enabledad".
	EnableDAD bool
	// SettleTimeout bounds the wait for DAD; default 5s.
	SettleTimeout time.Duration
	// NoPrefixRoute leaves out the kernel's route to each address's subnet (ptp routes it through the
	// gateway instead, in Config.Routes).
	NoPrefixRoute bool
}

// Config is a result's addresses and routes for one interface, in netip form.
type Config struct {
	Addrs  []netip.Prefix
	GW4    netip.Addr // first IPv4 gateway: next hop of IPv4 routes without one
	GW6    netip.Addr
	Routes []route.Route
}

// FromResult extracts the addresses in res that belong to interface ifIndex (or have no interface index)
// and every route, filling a missing route gateway with the family's gateway as the reference does.
func FromResult(res *current.Result, ifIndex int) (Config, error) {
	var c Config
	for i, ipc := range res.IPs {
		if ipc.Interface != nil && *ipc.Interface != ifIndex {
			continue
		}
		p, ok := addr.FromIPNet(ipc.Address)
		if !ok {
			return c, fmt.Errorf("ips[%d].address %v is not an IP prefix", i, ipc.Address)
		}
		c.Addrs = append(c.Addrs, p)
		if gw, ok := netip.AddrFromSlice(ipc.Gateway); ok {
			gw = gw.Unmap()
			if gw.Is4() && !c.GW4.IsValid() {
				c.GW4 = gw
			} else if gw.Is6() && !c.GW6.IsValid() {
				c.GW6 = gw
			}
		}
	}
	for i, r := range res.Routes {
		dst, ok := addr.FromIPNet(r.Dst)
		if !ok {
			return c, fmt.Errorf("routes[%d].dst %v is not an IP prefix", i, r.Dst)
		}
		rt := route.Route{Dst: dst.Masked(), Priority: r.Priority}
		if gw, ok := netip.AddrFromSlice(r.GW); ok {
			rt.GW = gw.Unmap()
		} else if dst.Addr().Is4() {
			rt.GW = c.GW4
		} else {
			rt.GW = c.GW6
		}
		if r.Table != nil {
			rt.Table = *r.Table
		}
		if r.Scope != nil {
			s := netlink.Scope(*r.Scope)
			rt.Scope = &s
		}
		c.Routes = append(c.Routes, rt)
	}
	return c, nil
}

func (c Config) hasV6() bool {
	for _, p := range c.Addrs {
		if p.Addr().Is6() {
			return true
		}
	}
	return false
}

// Apply configures ifname in the current namespace: sysctls, addresses, link up, then routes.
func Apply(ifname string, c Config, o Options) error {
	l, err := link.ByName(ifname)
	if err != nil {
		return err
	}
	// Tell neighbours our (new) MAC at once when the link comes up, so a recycled IP is not black-holed
	// by stale ARP caches.
	_ = sysctl.Set(sysctl.IPv4Conf(ifname, "arp_notify"), "1")
	if c.hasV6() {
		for _, name := range []string{"lo", ifname} {
			if err := sysctl.Ensure(sysctl.IPv6Conf(name, "disable_ipv6"), "0"); err != nil {
				return fmt.Errorf("enable IPv6 on %q: %w", name, err)
			}
		}
		if o.EnableDAD {
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "enhanced_dad"), "1")
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "accept_dad"), "1")
		} else {
			// The address comes from IPAM and is unique by construction; DAD would only delay the
			// pod's first packets by a second or more.
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "accept_dad"), "0")
		}
		_ = sysctl.Set(sysctl.IPv6Conf(ifname, "keep_addr_on_down"), "1")
	}
	add := addr.Add
	if o.NoPrefixRoute {
		add = addr.AddNoPrefixRoute
	}
	for _, p := range c.Addrs {
		if err := add(l, p); err != nil {
			return err
		}
	}
	if err := link.SetUp(l); err != nil {
		return err
	}
	if c.hasV6() && o.EnableDAD {
		timeout := o.SettleTimeout
		if timeout == 0 {
			timeout = 5 * time.Second
		}
		if err := addr.WaitSettled(l, timeout); err != nil {
			return err
		}
	}
	for _, r := range c.Routes {
		if err := route.Add(l, r); err != nil {
			return err
		}
	}
	return nil
}

// Verify reports the first address or route of c that ifname lacks in the current namespace.
func Verify(ifname string, c Config) error {
	l, err := link.ByName(ifname)
	if err != nil {
		return err
	}
	if err := addr.Verify(l, c.Addrs); err != nil {
		return err
	}
	return route.Verify(l, c.Routes)
}

// VerifyVeth is Verify for the container end of a veth pair, in the current namespace: it also checks
// the MAC (when wantMAC is set) and returns the ifindex of the peer, where the node's end is checked.
func VerifyVeth(ifname, wantMAC string, c Config) (peer int, err error) {
	l, err := link.ByName(ifname)
	if err != nil {
		return 0, err
	}
	if have := l.Attrs().HardwareAddr.String(); wantMAC != "" && wantMAC != have {
		return 0, fmt.Errorf("%q has MAC %s, the ADD result says %s", ifname, have, wantMAC)
	}
	if peer, err = link.VethPeerIndex(l); err != nil {
		return 0, err
	}
	return peer, Verify(ifname, c)
}
