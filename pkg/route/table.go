package route

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Routes kept as the kernel reports them (every attribute), for plugins that move a link's routes
// between tables (sbr) and must put back exactly what they took.

// ListMainOf returns l's routes of both families in the main table, every attribute kept.
func ListMainOf(l netlink.Link) ([]netlink.Route, error) {
	rs, err := netlinksafe.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of %q: %w", l.Attrs().Name, err)
	}
	return rs, nil
}

// ListTableOf returns l's routes of both families in table.
func ListTableOf(l netlink.Link, table int) ([]netlink.Route, error) {
	rs, err := netlinksafe.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{LinkIndex: l.Attrs().Index, Table: table}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of %q in table %d: %w", l.Attrs().Name, table, err)
	}
	return rs, nil
}

// Tables returns every routing table that holds a route (both families).
func Tables() (map[int]bool, error) {
	rs, err := netlinksafe.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of every table: %w", err)
	}
	used := map[int]bool{}
	for _, r := range rs {
		used[r.Table] = true
	}
	return used, nil
}

// AddRaw adds r as given; an identical route already present is fine.
func AddRaw(r netlink.Route) error {
	if err := netlink.RouteAdd(&r); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add route %s: %w", r, err)
	}
	return nil
}

// ReplaceRaw adds r, replacing a route to the same destination in the same table.
func ReplaceRaw(r netlink.Route) error {
	if err := netlink.RouteReplace(&r); err != nil {
		return fmt.Errorf("replace route %s: %w", r, err)
	}
	return nil
}

// DelRaw removes r; already absent is fine.
func DelRaw(r netlink.Route) error {
	if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("remove route %s: %w", r, err)
	}
	return nil
}
