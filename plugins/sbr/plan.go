package main

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// firstTable is the first routing table sbr considers when the configuration names none.
const firstTable = 100

// tablePlan is what sbr sets up for one address: the rule "from <src> lookup <table>" and the routes
// of that table.
type tablePlan struct {
	src    netip.Addr
	table  int
	routes []netlink.Route
}

// plan decides, without touching the kernel, what ADD sets up when the configuration names no table,
// as the reference does: each address gets the first table from firstTable on that no rule or route
// uses; the table gets a default route through the address's gateway (if any) and a copy of each of the
// interface's main-table routes whose source or gateway lies in the address's subnet, or that have
// neither. Then every one of the interface's main-table routes (linkRoutes) is removed from main (the
// caller's second step).
func plan(ips []ipConf, linkRoutes []netlink.Route, used map[int]bool, linkIndex int) []tablePlan {
	out := make([]tablePlan, 0, len(ips))
	table := nextFree(used, firstTable)
	for _, ip := range ips {
		p := tablePlan{src: ip.addr.Addr(), table: table}
		if ip.gw.IsValid() {
			p.routes = append(p.routes, netlink.Route{Dst: defaultDst(ip.addr.Addr()), Gw: ip.gw.AsSlice(), Table: table, LinkIndex: linkIndex})
		}
		subnet := ip.addr.Masked()
		for _, r := range linkRoutes {
			if inSubnet(subnet, r.Src) || inSubnet(subnet, r.Gw) || (r.Src == nil && r.Gw == nil) {
				c := r
				c.Table = table
				// A route the kernel made carries flags (e.g. linkdown) that adding refuses.
				c.Flags = 0
				p.routes = append(p.routes, c)
			}
		}
		out = append(out, p)
		used[table] = true
		table = nextFree(used, table+1)
	}
	return out
}

// fixedPlan is ADD with a configured table: only the rules; the table's routes are the user's.
func fixedPlan(ips []ipConf, table int) []tablePlan {
	out := make([]tablePlan, 0, len(ips))
	for _, ip := range ips {
		out = append(out, tablePlan{src: ip.addr.Addr(), table: table})
	}
	return out
}

// nextFree returns the first table from candidate on that used does not hold.
func nextFree(used map[int]bool, candidate int) int {
	for used[candidate] {
		candidate++
	}
	return candidate
}

func inSubnet(subnet netip.Prefix, ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && subnet.Contains(a.Unmap())
}

func defaultDst(a netip.Addr) *net.IPNet {
	if a.Is4() {
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}
