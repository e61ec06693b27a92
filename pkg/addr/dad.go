package addr

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dadPoll is how often the waits below look at the link's addresses again.
const dadPoll = 2 * time.Millisecond

// AddOptimistic puts p on l; an IPv6 p is marked optimistic (RFC 4429, IFA_F_OPTIMISTIC): the pod can
// send from it and receive on it at once while duplicate address detection runs, and the kernel still
// marks it dadfailed (and stops using it) when another node answers for it. The kernel honours the flag
// only on a link whose optimistic_dad sysctl is on, and routes the address to the host at once only when
// l is up when it is added: on a link brought up later the address stays unreachable until DAD ends.
// Already present is fine. noPrefixRoute leaves out the route to p's subnet (AddNoPrefixRoute).
func AddOptimistic(l netlink.Link, p netip.Prefix, noPrefixRoute bool) error {
	a := &netlink.Addr{IPNet: IPNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_OPTIMISTIC
	}
	if noPrefixRoute {
		a.Flags |= unix.IFA_F_NOPREFIXROUTE
	}
	if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to %q: %w", p, l.Attrs().Name, err)
	}
	return nil
}

// dadState is what the kernel says of one link's IPv6 addresses: those of want that duplicate address
// detection found in use by another node, and whether a link-local address is still tentative or
// missing.
type dadState struct {
	dups             []netip.Prefix
	linkLocalPending bool
}

// readDAD sorts as (one dump of a link's IPv6 addresses) into a dadState for the addresses of want.
func readDAD(as []netlink.Addr, want []netip.Prefix) dadState {
	var s dadState
	haveLL := false
	for _, a := range as {
		p, ok := FromIPNet(*a.IPNet)
		if !ok {
			continue
		}
		if p.Addr().IsLinkLocalUnicast() {
			haveLL = true
			if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
				s.linkLocalPending = true
			}
			continue
		}
		if a.Flags&unix.IFA_F_DADFAILED == 0 {
			continue
		}
		for _, w := range want {
			if w == p {
				s.dups = append(s.dups, p)
			}
		}
	}
	if !haveLL {
		s.linkLocalPending = true
	}
	return s
}

func dadOf(l netlink.Link, want []netip.Prefix) (dadState, error) {
	as, err := netlinksafe.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return dadState{}, fmt.Errorf("list addresses of %q: %w", l.Attrs().Name, err)
	}
	return readDAD(as, want), nil
}

// Duplicates returns the addresses of want that l carries and that duplicate address detection found in
// use by another node on the link (IFA_F_DADFAILED): the kernel no longer sends from or answers for them.
func Duplicates(l netlink.Link, want []netip.Prefix) ([]netip.Prefix, error) {
	s, err := dadOf(l, want)
	return s.dups, err
}

// WaitDuplicates watches l's addresses of want for wait and returns as soon as duplicate address
// detection finds one in use by another node (the duplicates), or nothing when none was found by then.
func WaitDuplicates(l netlink.Link, want []netip.Prefix, wait time.Duration) ([]netip.Prefix, error) {
	deadline := time.Now().Add(wait)
	for {
		dups, err := Duplicates(l, want)
		if err != nil || len(dups) > 0 || !time.Now().Before(deadline) {
			return dups, err
		}
		time.Sleep(min(dadPoll, time.Until(deadline)))
	}
}

// WaitLinkLocal waits up to timeout for l, just brought up, to have a link-local address that is no
// longer tentative, and reports whether it has. The kernel makes the address as the link comes up and
// finishes it from a work queue, so on a link without DAD this takes microseconds; it never happens
// while DAD runs on the address or when the link has no carrier (the address then comes later).
func WaitLinkLocal(l netlink.Link, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := dadOf(l, nil)
		if err != nil {
			return false, err
		}
		if !s.linkLocalPending {
			return true, nil
		}
		if !time.Now().Before(deadline) {
			return false, nil
		}
		time.Sleep(min(dadPoll, time.Until(deadline)))
	}
}
