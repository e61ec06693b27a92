package doctor

import (
	"fmt"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostRoute is a route of the node's main table.
type hostRoute struct {
	Dst  netip.Prefix
	Dev  string
	Kind string // the device's link kind: "bridge", "veth", "vxlan", ...
}

func checkPodCIDRs(n *Node) []Finding {
	routes, err := mainRoutes()
	if err != nil {
		return []Finding{{Status: Unknown, Found: "cannot list the routes: " + err.Error()}}
	}
	return podCIDRFindings(infos(n), routes)
}

// podCIDRFindings checks each network's pod prefixes against the node's routes and against the other
// networks' prefixes. A route to a prefix inside (or equal to) a pod prefix on a device that is not the
// network's own steals the pods' traffic: the longest match wins. A broader route (a default route, the
// cluster's supernet) is normal and loses to the pod route. Routes on veths are pods' own (ptp's per-pod
// routes, a pod's host end).
func podCIDRFindings(nets []netInfo, routes []hostRoute) []Finding {
	var out []Finding
	for i, in := range nets {
		for _, p := range in.Prefixes {
			f := Finding{Subject: fmt.Sprintf("%s: %s", in.Name, p), Status: OK, Found: "no host route or other network overlaps it"}
			for _, r := range routes {
				if r.Dst.Addr().Is4() != p.Addr().Is4() || r.Dst.Bits() < p.Bits() || !r.Dst.Overlaps(p) ||
					r.Dev == "" || in.owns(r.Dev) || r.Kind == "veth" {
					continue
				}
				f.Status = Fail
				f.Found = fmt.Sprintf("route %s dev %s overlaps the pod subnet: the node sends those pods' packets to %s", r.Dst, r.Dev, r.Dev)
				f.Fix = fmt.Sprintf("ip route del %s dev %s (or give %s a pod subnet that does not overlap it)", r.Dst, r.Dev, in.File)
				break
			}
			if f.Status == OK {
				if o, q, ok := overlappingNetwork(nets, i, p); ok {
					f.Status = Fail
					f.Found = fmt.Sprintf("overlaps %s of network %s (%s): pods of both get addresses the node routes to one", q, o.Name, o.File)
					f.Fix = fmt.Sprintf("give %s or %s a pod subnet of its own", in.File, o.File)
				}
			}
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		out = append(out, Finding{Status: OK, Found: "no network with a pod subnet"})
	}
	return out
}

// overlappingNetwork finds another network (by name: one network in two files is the duplicate the
// conflist check reports) with a prefix overlapping p.
func overlappingNetwork(nets []netInfo, self int, p netip.Prefix) (netInfo, netip.Prefix, bool) {
	for j, o := range nets {
		if j == self || o.Name == nets[self].Name {
			continue
		}
		for _, q := range o.Prefixes {
			if q.Overlaps(p) {
				return o, q, true
			}
		}
	}
	return netInfo{}, netip.Prefix{}, false
}

// mainRoutes lists the main table's routes of the calling thread's namespace that have a destination.
func mainRoutes() ([]hostRoute, error) {
	_, byIndex, err := linksByIndex()
	if err != nil {
		return nil, err
	}
	rs, err := netlinksafe.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []hostRoute
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		dst, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		idx := r.LinkIndex
		if idx == 0 && len(r.MultiPath) > 0 {
			idx = r.MultiPath[0].LinkIndex
		}
		hr := hostRoute{Dst: netip.PrefixFrom(dst.Unmap(), ones).Masked()}
		if l, ok := byIndex[idx]; ok {
			hr.Dev, hr.Kind = l.Attrs().Name, l.Type()
		}
		out = append(out, hr)
	}
	return out, nil
}
