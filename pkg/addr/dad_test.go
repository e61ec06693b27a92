package addr

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestReadDAD(t *testing.T) {
	a := func(s string, flags int) netlink.Addr {
		return netlink.Addr{IPNet: IPNet(netip.MustParsePrefix(s)), Flags: flags}
	}
	want := []netip.Prefix{netip.MustParsePrefix("fd00::10/64"), netip.MustParsePrefix("fd00::11/64")}
	for _, c := range []struct {
		name      string
		addrs     []netlink.Addr
		dups      []netip.Prefix
		llPending bool
	}{
		{name: "nothing yet", llPending: true},
		{name: "link-local tentative", addrs: []netlink.Addr{a("fe80::1/64", unix.IFA_F_TENTATIVE)}, llPending: true},
		{name: "link-local optimistic", addrs: []netlink.Addr{a("fe80::1/64", unix.IFA_F_TENTATIVE|unix.IFA_F_OPTIMISTIC)}, llPending: true},
		{name: "link-local ready, addresses probing", addrs: []netlink.Addr{
			a("fe80::1/64", unix.IFA_F_PERMANENT), a("fd00::10/64", unix.IFA_F_TENTATIVE|unix.IFA_F_OPTIMISTIC), a("fd00::11/64", 0)}},
		{name: "one duplicate", addrs: []netlink.Addr{
			a("fe80::1/64", 0), a("fd00::10/64", unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED), a("fd00::11/64", unix.IFA_F_OPTIMISTIC)},
			dups: want[:1]},
		{name: "a duplicate that is not ours", addrs: []netlink.Addr{a("fe80::1/64", 0), a("fd00::99/64", unix.IFA_F_DADFAILED)}},
		{name: "link-local duplicate", addrs: []netlink.Addr{a("fe80::1/64", unix.IFA_F_DADFAILED|unix.IFA_F_TENTATIVE)}, llPending: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := readDAD(c.addrs, want)
			if !slices.Equal(s.dups, c.dups) || s.linkLocalPending != c.llPending {
				t.Errorf("readDAD = %+v, want dups %v, link-local pending %v", s, c.dups, c.llPending)
			}
		})
	}
}
