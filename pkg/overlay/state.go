package overlay

import (
	"errors"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/neigh"
	"github.com/netloom/netloom/pkg/route"
)

// state is what the kernel holds for one overlay network, read once by readState so that diff can
// compare it with the plan without a kernel.
type state struct {
	// device is the link named like the tunnel, whatever it is; nil when there is none, and then the
	// neighbour, FDB and address lists are empty.
	device netlink.Link
	// routes are all main-table routes of the overlay protocol, through any link: diff decides which
	// are this network's.
	routes []route.Installed
	neighs []neigh.Entry  // the device's permanent neighbour entries
	fdb    []neigh.FDB    // the device's FDB entries pointing at a VTEP; read for VXLAN only
	addrs  []netip.Prefix // the device's global addresses
}

// readState reads the kernel's side of nw: the tunnel device, the routes of the overlay protocol, and
// the device's neighbour, FDB and address entries.
func (nw *Network) readState() (state, error) {
	var st state
	dev, err := link.ByName(nw.Conf.Device)
	if err != nil && !errors.Is(err, link.ErrNotFound) {
		return st, err
	}
	if st.routes, err = route.ListByProtocol(route.ProtoOverlay); err != nil {
		return st, err
	}
	if dev == nil {
		return st, nil
	}
	st.device = dev
	if st.neighs, err = neigh.Permanent(dev); err != nil {
		return st, err
	}
	if nw.Conf.kind.Tunnel == link.KindVXLAN {
		if st.fdb, err = neigh.ListFDB(dev); err != nil {
			return st, err
		}
	}
	if st.addrs, err = addr.List(dev, netlink.FAMILY_ALL); err != nil {
		return st, err
	}
	return st, nil
}
