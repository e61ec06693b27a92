package dhcp

import (
	"errors"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
)

// staticRouteLen is one entry of option 33: a classful destination and a router, 4 bytes each.
const staticRouteLen = 8

// Result is what an ADD reports for an acknowledged lease, as the reference reports it: the address with
// the subnet mask, the first router as gateway, and routes: option 121's classless routes when the
// server sent any (RFC 3442: then options 33 and 3 are ignored), else option 33's static routes and a
// default route through the gateway. priority, when not 0, becomes every route's metric. netloom adds
// the DNS servers, domain and search list the server sent (the reference reports none).
func Result(ack *dhcpv4.DHCPv4, priority int) (*current.Result, error) {
	mask := ack.SubnetMask()
	if mask == nil {
		return nil, errors.New("the server's DHCPACK has no subnet mask (option 1); without it the pod's prefix is unknown")
	}
	gw := gateway(ack)
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		IPs:        []*current.IPConfig{{Address: net.IPNet{IP: ack.YourIPAddr.To4(), Mask: mask}, Gateway: gw}},
		Routes:     routes(ack, gw),
		DNS:        dns(ack),
	}
	if priority != 0 {
		for _, r := range res.Routes {
			r.Priority = priority
		}
	}
	return res, nil
}

func gateway(ack *dhcpv4.DHCPv4) net.IP {
	if gws := ack.Router(); len(gws) > 0 {
		return gws[0].To4()
	}
	return nil
}

func routes(ack *dhcpv4.DHCPv4, gw net.IP) []*types.Route {
	out := []*types.Route{}
	if classless := ack.ClasslessStaticRoute(); len(classless) > 0 {
		for _, r := range classless {
			route := &types.Route{Dst: *r.Dest, GW: r.Router}
			if r.Router.IsUnspecified() {
				// No router: the destination is on the link.
				scope := int(netlink.SCOPE_LINK)
				route.Scope = &scope
			}
			out = append(out, route)
		}
		return out
	}
	static := ack.Options.Get(dhcpv4.OptionStaticRoutingTable)
	for ; len(static) >= staticRouteLen; static = static[staticRouteLen:] {
		// The destination's class gives its mask (RFC 2132 5.8); host bits beyond it are cleared, where the
		// reference keeps them and the kernel then refuses the route.
		dst := net.IP(append([]byte(nil), static[:4]...))
		mask := dst.DefaultMask()
		if mask == nil {
			continue // class D or E: no route goes there
		}
		out = append(out, &types.Route{
			Dst: net.IPNet{IP: dst.Mask(mask), Mask: mask},
			GW:  net.IP(append([]byte(nil), static[4:8]...)),
		})
	}
	if gw != nil {
		out = append(out, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw})
	}
	return out
}

func dns(ack *dhcpv4.DHCPv4) types.DNS {
	var d types.DNS
	for _, ip := range ack.DNS() {
		d.Nameservers = append(d.Nameservers, ip.String())
	}
	d.Domain = ack.DomainName()
	if labels := ack.DomainSearch(); labels != nil {
		d.Search = labels.Labels
	}
	return d
}
