package overlay

import (
	"net/netip"
	"slices"

	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/neigh"
	"github.com/netloom/netloom/pkg/route"
)

// Desired is the peer state an overlay wants on this node, decided from the configuration and the peers
// alone (no kernel), so it is unit-tested and CHECK and sync compare the kernel against the same thing.
type Desired struct {
	// TunnelAddrs go on the tunnel device: the first address of this node's pod CIDR, the source of
	// packets the node itself sends through the tunnel, so replies come back through it.
	TunnelAddrs []netip.Prefix
	Routes      []PeerRoute
	Neighs      []neigh.Entry // on the tunnel device (vxlan)
	FDB         []neigh.FDB   // on the tunnel device (vxlan)
}

// PeerRoute is the route to one peer's pod CIDR.
type PeerRoute struct {
	route.Route
	Direct bool // through the underlay interface, unencapsulated; else through the tunnel
}

// Plan decides the peer state of network nw.
func (nw *Network) Plan() Desired {
	own := nw.Conf.podCIDR
	d := Desired{TunnelAddrs: []netip.Prefix{netip.PrefixFrom(own.Addr(), own.Addr().BitLen())}}
	for _, p := range nw.Peers {
		sameFamily := p.PodCIDR.Addr().Is4() == p.NodeIP.Is4()
		if nw.Conf.crossSubnet && sameFamily && nw.Subnet.Contains(p.NodeIP) {
			d.Routes = append(d.Routes, PeerRoute{Direct: true, Route: route.Route{
				Dst: p.PodCIDR, GW: p.NodeIP, Protocol: route.ProtoOverlay,
			}})
			continue
		}
		if nw.Conf.kind.Tunnel == link.KindIPIP {
			// An NBMA IP-in-IP device takes the outer destination from the route's next hop.
			d.Routes = append(d.Routes, PeerRoute{Route: route.Route{
				Dst: p.PodCIDR, GW: p.NodeIP, OnLink: true, Protocol: route.ProtoOverlay,
			}})
			continue
		}
		// VXLAN, flannel's L3 model: the next hop resolves through a static neighbour entry to the
		// peer's VTEP MAC, and the FDB sends that MAC to the peer's underlay address. The next hop is the
		// peer's node address; for pods of the other family than the underlay, its pod CIDR's first
		// address (a route's gateway must be of the route's family).
		gw := p.NodeIP
		if !sameFamily {
			gw = p.PodCIDR.Addr()
		}
		mac := p.VTEPMAC
		if mac == nil {
			mac = VTEPMAC(p.NodeIP)
		}
		d.Routes = append(d.Routes, PeerRoute{Route: route.Route{
			Dst: p.PodCIDR, GW: gw, OnLink: true, Protocol: route.ProtoOverlay,
		}})
		d.Neighs = append(d.Neighs, neigh.Entry{IP: gw, MAC: mac})
		d.FDB = append(d.FDB, neigh.FDB{MAC: mac, Dst: p.NodeIP})
	}
	slices.SortFunc(d.Routes, func(a, b PeerRoute) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	return d
}
