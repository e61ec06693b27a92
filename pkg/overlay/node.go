package overlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/digest"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/link"
)

// Network is a configuration resolved against this node's kernel and the peers file: everything a
// reconcile or a pod attachment needs.
type Network struct {
	Conf     *NetConf
	Underlay netlink.Link
	NodeIP   netip.Addr
	Subnet   netip.Prefix // NodeIP's prefix on the underlay: peers inside it are "same subnet"
	MTU      int          // of the tunnel and of every pod interface
	VTEPMAC  net.HardwareAddr
	Peers    []Peer // every other node, inline and from peersFile
}

// Resolve finds the underlay interface and this node's address on it, settles the MTU, and reads the
// peers file. Errors are CNI errors naming the key at fault.
func (n *NetConf) Resolve() (*Network, error) {
	nw := &Network{Conf: n}
	if err := nw.findUnderlay(); err != nil {
		return nil, err
	}
	if err := nw.settleMTU(); err != nil {
		return nil, err
	}
	nw.VTEPMAC = n.vtepMAC
	if nw.VTEPMAC == nil {
		nw.VTEPMAC = VTEPMAC(nw.NodeIP)
	}
	peers, err := nw.collectPeers()
	if err != nil {
		return nil, err
	}
	nw.Peers = peers
	return nw, nil
}

func (nw *Network) findUnderlay() error {
	n := nw.Conf
	name := n.UnderlayInterface
	if name == "" {
		var err error
		if name, err = hostlink.DefaultRouteLink(); err != nil {
			if errors.Is(err, hostlink.ErrNoDefaultRoute) {
				return conf.Invalid("underlayInterface", "is not set and this node has no default route to take it from; name the interface that carries node-to-node traffic")
			}
			return conf.IOFailure("underlayInterface: %v", err)
		}
	}
	l, err := link.ByName(name)
	if errors.Is(err, link.ErrNotFound) {
		return conf.Invalid("underlayInterface", "%q does not exist on this node; name the interface that carries node-to-node traffic", name)
	} else if err != nil {
		return conf.IOFailure("underlayInterface: %v", err)
	}
	nw.Underlay = l
	have, err := addr.List(l, netlink.FAMILY_ALL)
	if err != nil {
		return conf.IOFailure("underlayInterface: %v", err)
	}
	pick := func(p netip.Prefix) bool {
		if n.nodeIP.IsValid() {
			return p.Addr() == n.nodeIP
		}
		return true
	}
	// IPv4 first: a dual-stack underlay carries the overlay over IPv4 unless nodeIP says otherwise.
	slices.SortStableFunc(have, func(a, b netip.Prefix) int {
		switch {
		case a.Addr().Is4() == b.Addr().Is4():
			return 0
		case a.Addr().Is4():
			return -1
		}
		return 1
	})
	for _, p := range have {
		if pick(p) {
			nw.NodeIP, nw.Subnet = p.Addr(), p.Masked()
			break
		}
	}
	switch {
	case !nw.NodeIP.IsValid() && n.nodeIP.IsValid():
		return conf.Invalid("nodeIP", "%s is not an address of underlay interface %q (it has %v)", n.nodeIP, name, have)
	case !nw.NodeIP.IsValid():
		return conf.Invalid("underlayInterface", "%q has no global IP address to send tunnelled packets from; give it one or name another interface", name)
	case n.kind.Tunnel == link.KindIPIP && !nw.NodeIP.Is4():
		return conf.Invalid("underlayInterface", "%q has no IPv4 address and IP-in-IP needs an IPv4 underlay", name)
	}
	return nil
}

// Overhead is what the tunnel adds to each packet over an underlay of nodeIP's family.
func (k Kind) Overhead(nodeIP netip.Addr) int {
	switch {
	case k.Tunnel == link.KindIPIP:
		return ipipOverhead
	case nodeIP.Is6():
		return vxlanV6Overhead
	}
	return vxlanV4Overhead
}

func (nw *Network) settleMTU() error {
	n := nw.Conf
	over := n.kind.Overhead(nw.NodeIP)
	most := nw.Underlay.Attrs().MTU - over
	switch {
	case most < conf.MinMTU:
		return conf.Invalid("underlayInterface", "%q has MTU %d, too small to carry the %d bytes of encapsulation and a %d-byte packet", nw.Underlay.Attrs().Name, nw.Underlay.Attrs().MTU, over, conf.MinMTU)
	case n.MTU == 0:
		nw.MTU = most
	case n.MTU > most:
		return conf.Invalid("mtu", "%d is more than underlay %q (MTU %d) can carry after the %d bytes of %s encapsulation; use at most %d, or leave it out",
			n.MTU, nw.Underlay.Attrs().Name, nw.Underlay.Attrs().MTU, over, n.kind.Tunnel, most)
	default:
		nw.MTU = n.MTU
	}
	return nil
}

// collectPeers joins "peers" and the peers file. The file may list this node itself (one file can then
// serve every node): that entry is skipped when its podCIDR is this node's, and an error otherwise.
// Errors name where the offending entry came from: peers[i], or the file and the entry's index in it.
func (nw *Network) collectPeers() ([]Peer, error) {
	n := nw.Conf
	peers := slices.Clone(n.peers)
	var labels []string
	for i, p := range n.peers {
		labels = append(labels, fmt.Sprintf("peers[%d]", i))
		if p.NodeIP == nw.NodeIP {
			return nil, conf.Invalid(labels[i]+".nodeIP", "%s is this node's own address; list only the other nodes", p.NodeIP)
		}
	}
	if n.PeersFile != "" {
		list, err := readPeersFile(n.PeersFile)
		if err != nil {
			return nil, err
		}
		fromFile, err := parsePeers("peersFile "+n.PeersFile, list)
		if err != nil {
			return nil, err
		}
		for i, p := range fromFile {
			if p.NodeIP != nw.NodeIP {
				peers = append(peers, p)
				labels = append(labels, fmt.Sprintf("peersFile %s entry %d", n.PeersFile, i))
				continue
			}
			if p.PodCIDR != n.podCIDR {
				return nil, conf.Invalid("peersFile", "%q entry %d lists this node (%s) with podCIDR %s, but this network's podCIDR is %s", n.PeersFile, i, p.NodeIP, p.PodCIDR, n.podCIDR)
			}
		}
		if err := checkPeerSet(peers, func(i int) string { return labels[i] }, n.podCIDR, n.clusterCIDR); err != nil {
			return nil, err
		}
	}
	for i, p := range peers {
		if p.NodeIP.Is4() != nw.NodeIP.Is4() {
			return nil, conf.Invalid(labels[i]+".nodeIP", "%s is not of the same IP family as this node's underlay address %s", p.NodeIP, nw.NodeIP)
		}
	}
	if n.kind.Tunnel == link.KindVXLAN {
		return peers, nw.checkVTEPMACs(peers, labels)
	}
	return peers, nil
}

// checkVTEPMACs refuses two VXLAN nodes with one VTEP MAC: the FDB maps a MAC to one node, so traffic
// for both would go to the last, and every reconcile would flip the entry.
func (nw *Network) checkVTEPMACs(peers []Peer, labels []string) error {
	owner := map[string]string{nw.VTEPMAC.String(): "this node"}
	for i, p := range peers {
		mac := p.VTEPMAC
		if mac == nil {
			mac = VTEPMAC(p.NodeIP)
		}
		if other, dup := owner[mac.String()]; dup {
			return conf.Invalid(labels[i]+".vtepMAC", "%s (node %s) is also the VTEP MAC of %s; every node needs its own", mac, p.NodeIP, other)
		}
		owner[mac.String()] = fmt.Sprintf("%s (node %s)", labels[i], p.NodeIP)
	}
	return nil
}

// VTEPMAC derives a node's VTEP MAC from its underlay address, so nodes need not exchange MACs: a locally
// administered unicast address, 0e:4c:<the IPv4 address> or 0e:4d:<4 bytes of a hash of the IPv6 one>.
func VTEPMAC(nodeIP netip.Addr) net.HardwareAddr {
	if nodeIP.Is4() {
		b := nodeIP.As4()
		return net.HardwareAddr{0x0e, 0x4c, b[0], b[1], b[2], b[3]}
	}
	b := nodeIP.As16()
	h := digest.Sum256(b[:])
	return net.HardwareAddr{0x0e, 0x4d, h[0], h[1], h[2], h[3]}
}
