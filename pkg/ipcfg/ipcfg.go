// Package ipcfg applies an IPAM result to an interface inside a container and verifies it later: the
// shared last step of every attachment plugin (bridge, macvlan, ipvlan, the overlays). Call its functions
// inside the container's namespace.
package ipcfg

import (
	"fmt"
	"net/netip"
	"strings"
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
	// OptimisticDAD runs IPv6 duplicate address detection without holding the addresses back, for links
	// on a LAN shared with other hosts (macvlan, ipvlan): the addresses are optimistic (RFC 4429), usable
	// at once, and Apply fails with a *DuplicateError when a node that already holds one answers within
	// DADAnswerWait. An answer that comes later still makes the kernel stop using the address (it turns
	// dadfailed) and Verify report it. The link-local address skips DAD, as without this option: it
	// derives from the link's own MAC, and while it were tentative the kernel would resolve no neighbour.
	OptimisticDAD bool
	// DADAnswerWait bounds the watch for a duplicate's answer, from the moment the addresses are added;
	// default DefaultDADAnswerWait.
	DADAnswerWait time.Duration
}

// DefaultDADAnswerWait is how long Apply with OptimisticDAD watches for a node answering for one of the
// addresses: the kernel probes an optimistic address as soon as it is added, and a host on the same LAN
// answers within a millisecond or two, so this catches a duplicate without holding ADD for the whole
// second that DAD takes to conclude there is none.
const DefaultDADAnswerWait = 20 * time.Millisecond

// linkLocalWait bounds the wait for the link-local address to be usable after the link comes up; it is
// usually microseconds. Past it (no carrier yet) Apply goes on: the address then runs DAD once it exists.
const linkLocalWait = 100 * time.Millisecond

// DuplicateError says which addresses duplicate address detection found in use by another node on Link.
type DuplicateError struct {
	Link  string
	Addrs []netip.Prefix
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("%q: %s in use by another node on the link (IPv6 duplicate address detection got an answer; the kernel marked it dadfailed and does not use it)", e.Link, e.Addresses())
}

// Addresses lists the duplicates, without prefix lengths.
func (e *DuplicateError) Addresses() string {
	s := make([]string, len(e.Addrs))
	for i, p := range e.Addrs {
		s[i] = p.Addr().String()
	}
	return strings.Join(s, ", ")
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

func (c Config) hasV6() bool { return len(c.v6()) > 0 }

// v6 returns c's IPv6 addresses, the ones duplicate address detection is about.
func (c Config) v6() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.Addrs {
		if p.Addr().Is6() {
			out = append(out, p)
		}
	}
	return out
}

// Apply configures ifname in the current namespace: sysctls, addresses, link up, then routes. With
// OptimisticDAD the link comes up before the addresses are added (see addOptimistic).
func Apply(ifname string, c Config, o Options) error {
	l, err := link.ByName(ifname)
	if err != nil {
		return err
	}
	// Tell neighbours our (new) MAC at once when the link comes up, so a recycled IP is not black-holed
	// by stale ARP caches.
	_ = sysctl.Set(sysctl.IPv4Conf(ifname, "arp_notify"), "1")
	optimistic := c.hasV6() && o.OptimisticDAD
	if c.hasV6() {
		for _, name := range []string{"lo", ifname} {
			if err := sysctl.Ensure(sysctl.IPv6Conf(name, "disable_ipv6"), "0"); err != nil {
				return fmt.Errorf("enable IPv6 on %q: %w", name, err)
			}
		}
		switch {
		case o.EnableDAD:
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "enhanced_dad"), "1")
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "accept_dad"), "1")
		case optimistic:
			// accept_dad stays off until the link-local address exists (addOptimistic).
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "accept_dad"), "0")
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "enhanced_dad"), "1")
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "optimistic_dad"), "1")
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "use_optimistic"), "1")
		default:
			// The address comes from IPAM and is unique by construction; DAD would only delay the
			// pod's first packets by a second or more.
			_ = sysctl.Set(sysctl.IPv6Conf(ifname, "accept_dad"), "0")
		}
		_ = sysctl.Set(sysctl.IPv6Conf(ifname, "keep_addr_on_down"), "1")
	}
	var probed time.Time // when the kernel got the addresses to probe
	if optimistic {
		if err := addOptimistic(l, c, o); err != nil {
			return err
		}
		probed = time.Now()
	} else {
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
	if optimistic {
		wait := o.DADAnswerWait
		if wait == 0 {
			wait = DefaultDADAnswerWait
		}
		// The routes went in meanwhile: that time counts towards the wait.
		dups, err := addr.WaitDuplicates(l, c.v6(), time.Until(probed.Add(wait)))
		if err != nil {
			return err
		}
		if len(dups) > 0 {
			return &DuplicateError{Link: ifname, Addrs: dups}
		}
	}
	return nil
}

// addOptimistic adds c's addresses, the IPv6 ones after bringing l up, with DAD on, optimistic. The
// order matters to the kernel twice over. An optimistic address is routed to the host (can receive) at
// once only when it is added to a running link; added before, it stays unreachable until DAD ends. And
// the kernel resolves neighbours only from a link-local source that is not itself tentative or
// optimistic, so the link-local address is made while accept_dad is still off, and DAD is turned on
// only once it is ready. IPv4 addresses go on before the link comes up, so that arp_notify announces
// them then.
func addOptimistic(l netlink.Link, c Config, o Options) error {
	for _, p := range c.Addrs {
		if p.Addr().Is6() {
			continue
		}
		if err := addr.AddOptimistic(l, p, o.NoPrefixRoute); err != nil {
			return err
		}
	}
	if err := link.SetUp(l); err != nil {
		return err
	}
	name := l.Attrs().Name
	// With all/accept_dad on, the kernel runs DAD on the link-local address whatever the link's own
	// sysctl says; nothing to wait for then.
	if all, _ := sysctl.Get(sysctl.IPv6Conf("all", "accept_dad")); all == "0" {
		if _, err := addr.WaitLinkLocal(l, linkLocalWait); err != nil {
			return err
		}
	}
	if err := sysctl.Set(sysctl.IPv6Conf(name, "accept_dad"), "1"); err != nil {
		return fmt.Errorf("turn on duplicate address detection on %q: %w", name, err)
	}
	for _, p := range c.v6() {
		if err := addr.AddOptimistic(l, p, o.NoPrefixRoute); err != nil {
			return err
		}
	}
	return nil
}

// Verify reports the first address or route of c that ifname lacks in the current namespace, and
// addresses that duplicate address detection found in use by another node (*DuplicateError): the link
// carries them, but the kernel no longer uses them.
func Verify(ifname string, c Config) error {
	l, err := link.ByName(ifname)
	if err != nil {
		return err
	}
	if err := addr.Verify(l, c.Addrs); err != nil {
		return err
	}
	if v6 := c.v6(); len(v6) > 0 {
		dups, err := addr.Duplicates(l, v6)
		if err != nil {
			return err
		}
		if len(dups) > 0 {
			return &DuplicateError{Link: ifname, Addrs: dups}
		}
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
