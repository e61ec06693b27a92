// Package addr adds, lists, verifies and removes IP addresses on links. Addresses are netip.Prefix values
// (address plus prefix length) inside netloom and become net.IPNet only here, at the netlink boundary.
package addr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Family returns netlink's family constant for p.
func Family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// IPNet converts p to the net.IPNet netlink wants, keeping the host bits.
func IPNet(p netip.Prefix) *net.IPNet {
	a := p.Addr().Unmap()
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// FromIPNet converts a net.IPNet (address with host bits) to a netip.Prefix.
func FromIPNet(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// Add puts p on l; already present is fine.
func Add(l netlink.Link, p netip.Prefix) error {
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: IPNet(p)}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to %q: %w", p, l.Attrs().Name, err)
	}
	return nil
}

// Del removes p from l; already absent is fine.
func Del(l netlink.Link, p netip.Prefix) error {
	if err := netlink.AddrDel(l, &netlink.Addr{IPNet: IPNet(p)}); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("remove %s from %q: %w", p, l.Attrs().Name, err)
	}
	return nil
}

// List returns l's global-scope addresses of family (netlink.FAMILY_ALL for both).
func List(l netlink.Link, family int) ([]netip.Prefix, error) {
	as, err := netlinksafe.AddrList(l, family)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %q: %w", l.Attrs().Name, err)
	}
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		if a.Scope != int(netlink.SCOPE_UNIVERSE) {
			continue
		}
		if p, ok := FromIPNet(*a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// EnsureGateway puts gw on l (a bridge) as its only address of that family within gw's subnet. An IPv4
// bridge holds one gateway address; IPv6 bridges may hold several as long as the subnets do not overlap.
// A conflicting address is replaced when force is set, otherwise reported.
func EnsureGateway(l netlink.Link, gw netip.Prefix, force bool) error {
	have, err := List(l, Family(gw))
	if err != nil {
		return err
	}
	for _, a := range have {
		if a == gw {
			return nil
		}
		if gw.Addr().Is4() || a.Overlaps(gw) {
			if !force {
				return fmt.Errorf("%q already has address %s, not the gateway %s; set \"forceAddress\": true to replace it, or use another bridge", l.Attrs().Name, a, gw)
			}
			if err := Del(l, a); err != nil {
				return err
			}
		}
	}
	return AddNoDAD(l, gw)
}

// AddNoDAD puts p on l without IPv6 duplicate address detection, so a gateway answers as soon as ADD
// returns instead of ~1-2 s later. Only for addresses netloom owns on links it owns (the bridge).
func AddNoDAD(l netlink.Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: IPNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to %q: %w", p, l.Attrs().Name, err)
	}
	return nil
}

// AddNoPrefixRoute puts p on l without the route to p's subnet the kernel would add with it: for a
// point-to-point attachment (ptp) that routes the subnet through a gateway instead.
func AddNoPrefixRoute(l netlink.Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: IPNet(p), Flags: unix.IFA_F_NOPREFIXROUTE}
	if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to %q: %w", p, l.Attrs().Name, err)
	}
	return nil
}

// Verify reports the first of want that l does not carry.
func Verify(l netlink.Link, want []netip.Prefix) error {
	have, err := List(l, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%q is missing address %s (has %v)", l.Attrs().Name, w, have)
		}
	}
	return nil
}

// WaitSettled waits until no IPv6 address on l is tentative (duplicate address detection done), and
// fails if one turned out to be a duplicate.
func WaitSettled(l netlink.Link, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		as, err := netlinksafe.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("list addresses of %q: %w", l.Attrs().Name, err)
		}
		pending := false
		for _, a := range as {
			if a.Flags&unix.IFA_F_DADFAILED != 0 {
				return fmt.Errorf("%q: address %s is a duplicate on the network", l.Attrs().Name, a.IPNet)
			}
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				pending = true
			}
		}
		if !pending {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%q: IPv6 addresses still tentative after %v", l.Attrs().Name, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
