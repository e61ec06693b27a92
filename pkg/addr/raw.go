package addr

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// ListGlobalRaw returns l's global-scope addresses of family with every attribute the kernel reports
// (flags, lifetimes), for a plugin that must put back exactly what the kernel dropped.
func ListGlobalRaw(l netlink.Link, family int) ([]netlink.Addr, error) {
	as, err := netlinksafe.AddrList(l, family)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %q: %w", l.Attrs().Name, err)
	}
	var out []netlink.Addr
	for _, a := range as {
		if a.Scope == int(netlink.SCOPE_UNIVERSE) {
			out = append(out, a)
		}
	}
	return out, nil
}

// AddRaw puts a on l as given; already present is fine.
func AddRaw(l netlink.Link, a netlink.Addr) error {
	if err := netlink.AddrAdd(l, &a); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to %q: %w", a.IPNet, l.Attrs().Name, err)
	}
	return nil
}
