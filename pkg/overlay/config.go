// Package overlay is what vxlan-overlay and ipip-overlay share: their configuration, the peer model and
// the reconcile that makes the tunnel device, routes, neighbour and FDB entries match the peer set, the
// routed-veth attachment of a pod, and the CNI commands themselves. The two plugins differ only in their
// Kind.
package overlay

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall/ipmasq"
	"github.com/netloom/netloom/pkg/link"
)

// Encapsulation overheads: what the tunnel adds to every packet, so the pod MTU must be that much smaller
// than the underlay's.
const (
	vxlanV4Overhead = 50 // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
	vxlanV6Overhead = 70 // outer IPv6 40 + the same 30
	ipipOverhead    = 20 // outer IPv4 header
	maxVNI          = 1<<24 - 1
	defaultPort     = 4789 // IANA's VXLAN port (the kernel's own default is the pre-standard 8472)
)

// Kind is one overlay: its plugin name and the parts of the configuration only it accepts.
type Kind struct {
	Plugin string // "vxlan-overlay" or "ipip-overlay"
	Tunnel string // link.KindVXLAN or link.KindIPIP
}

var (
	// VXLAN is vxlan-overlay: Ethernet in UDP, peers programmed as FDB and neighbour entries.
	VXLAN = Kind{Plugin: "vxlan-overlay", Tunnel: link.KindVXLAN}
	// IPIP is ipip-overlay: IPv4 in IPv4 through one NBMA tunnel device, Calico's IPIP mode.
	IPIP = Kind{Plugin: "ipip-overlay", Tunnel: link.KindIPIP}
)

// IP-in-IP modes (Calico's ipipMode).
const (
	ModeAlways      = "always"
	ModeCrossSubnet = "crossSubnet"
)

// NetConf is the configuration of both overlay plugins. Keys one kind does not use are refused by the
// other, so a vxlan key in an ipip-overlay conflist is reported rather than ignored.
type NetConf struct {
	types.NetConf
	Device            string     `json:"device,omitempty"`
	UnderlayInterface string     `json:"underlayInterface,omitempty"`
	NodeIP            string     `json:"nodeIP,omitempty"`
	MTU               int        `json:"mtu,omitempty"`
	PodCIDR           string     `json:"podCIDR"`
	ClusterCIDR       string     `json:"clusterCIDR,omitempty"`
	Peers             []PeerConf `json:"peers,omitempty"`
	PeersFile         string     `json:"peersFile,omitempty"`
	IPMasq            bool       `json:"ipMasq,omitempty"`
	IPMasqBackend     *string    `json:"ipMasqBackend,omitempty"`
	masqBE            string     // the validated backend, "" for the default

	// vxlan-overlay only.
	VNI           *int   `json:"vni,omitempty"`
	Port          int    `json:"port,omitempty"`
	VTEPMAC       string `json:"vtepMAC,omitempty"`
	DirectRouting bool   `json:"directRouting,omitempty"`

	// ipip-overlay only.
	Mode string `json:"mode,omitempty"`

	// Derived by validate.
	kind        Kind
	podCIDR     netip.Prefix
	clusterCIDR netip.Prefix
	nodeIP      netip.Addr
	vtepMAC     net.HardwareAddr
	peers       []Peer // from "peers"; the file is read by Resolve
	vni         int
	crossSubnet bool // direct routes to same-subnet peers: directRouting or mode crossSubnet
}

// PeerConf is one entry of "peers" or of the peersFile list.
type PeerConf struct {
	NodeIP  string `json:"nodeIP"`
	PodCIDR string `json:"podCIDR"`
	VTEPMAC string `json:"vtepMAC,omitempty"`
}

// Parse decodes and validates a network configuration for kind; every error is a CNI error (code 7 for
// a bad key) naming the key and what would be valid. Nothing here looks at the kernel or the peers file.
func Parse(kind Kind, stdin []byte) (*NetConf, error) {
	n := &NetConf{kind: kind}
	if err := conf.Decode(stdin, n); err != nil {
		return nil, err
	}
	if err := n.validate(); err != nil {
		return nil, err
	}
	return n, nil
}

// DefaultDevice is the tunnel device's name when "device" is not set.
func (k Kind) DefaultDevice(vni int) string {
	if k.Tunnel == link.KindIPIP {
		return "nlipip"
	}
	return fmt.Sprintf("nlvx.%d", vni)
}

// validate checks the keys and fills in the parsed and defaulted fields, one group of keys after the
// other; the first error is the one reported.
func (n *NetConf) validate() error {
	if n.IPAM.Type == "" {
		return conf.Invalid("ipam", "is missing; give an \"ipam\" section such as {\"type\": \"host-local\"} (its subnet defaults to podCIDR)")
	}
	for _, check := range []func() error{n.validateKindKeys, n.validateNodeKeys, n.validateCIDRs, n.validateMasq, n.validateTunnelFamily, n.validatePeers} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// validateNodeKeys checks what names this node's side: the tunnel device, the underlay interface, the
// node address and the MTU.
func (n *NetConf) validateNodeKeys() error {
	if n.Device == "" {
		n.Device = n.kind.DefaultDevice(n.vni)
	}
	if err := conf.ValidateIfName("device", n.Device); err != nil {
		return err
	}
	if n.UnderlayInterface != "" {
		if err := conf.ValidateIfName("underlayInterface", n.UnderlayInterface); err != nil {
			return err
		}
	}
	if n.NodeIP != "" {
		a, err := netip.ParseAddr(n.NodeIP)
		if err != nil || a.Zone() != "" {
			return conf.Invalid("nodeIP", "%q is not an IP address; give this node's underlay address, e.g. \"192.168.1.10\"", n.NodeIP)
		}
		n.nodeIP = a.Unmap()
	}
	if err := conf.CheckMTU(n.MTU, "the underlay's MTU minus the encapsulation"); err != nil {
		return err
	}
	return nil
}

// validateCIDRs parses podCIDR and clusterCIDR, which must hold it.
func (n *NetConf) validateCIDRs() error {
	var err error
	if n.podCIDR, err = parseCIDR("podCIDR", n.PodCIDR, true); err != nil {
		return err
	}
	if n.ClusterCIDR == "" {
		return nil
	}
	if n.clusterCIDR, err = parseCIDR("clusterCIDR", n.ClusterCIDR, true); err != nil {
		return err
	}
	if n.clusterCIDR.Addr().Is4() != n.podCIDR.Addr().Is4() || n.clusterCIDR.Bits() > n.podCIDR.Bits() || !n.clusterCIDR.Contains(n.podCIDR.Addr()) {
		return conf.Invalid("podCIDR", "%s is not inside clusterCIDR %s; each node's pod CIDR is a piece of the cluster CIDR", n.podCIDR, n.clusterCIDR)
	}
	return nil
}

// validateMasq checks the masquerade keys.
func (n *NetConf) validateMasq() error {
	if n.IPMasq && !n.clusterCIDR.IsValid() {
		return conf.Invalid("clusterCIDR", "is needed with \"ipMasq\": traffic to the cluster CIDR is never masqueraded; give e.g. \"10.244.0.0/16\"")
	}
	var err error
	n.masqBE, err = ipmasq.Backend(n.IPMasqBackend)
	return err
}

// validateTunnelFamily refuses pods the tunnel cannot carry.
func (n *NetConf) validateTunnelFamily() error {
	if n.kind.Tunnel == link.KindIPIP && !n.podCIDR.Addr().Is4() {
		return conf.Invalid("podCIDR", "%s is IPv6; IP-in-IP carries IPv4 only, use vxlan-overlay for IPv6 pods", n.podCIDR)
	}
	return nil
}

// validatePeers checks peersFile's path (the file itself is read on every call) and the inline peers.
func (n *NetConf) validatePeers() error {
	if n.PeersFile != "" && !strings.HasPrefix(n.PeersFile, "/") {
		return conf.Invalid("peersFile", "%q is not an absolute path; the plugin's working directory is the runtime's, so give the full path", n.PeersFile)
	}
	var err error
	if n.peers, err = parsePeers("peers", n.Peers); err != nil {
		return err
	}
	return checkPeerSet(n.peers, func(i int) string { return fmt.Sprintf("peers[%d]", i) }, n.podCIDR, n.clusterCIDR)
}

func (n *NetConf) validateKindKeys() error {
	if n.kind.Tunnel == link.KindIPIP {
		// In the order the README lists them, so the error names the same key every time.
		for _, k := range []struct {
			key string
			set bool
		}{{"vni", n.VNI != nil}, {"port", n.Port != 0}, {"vtepMAC", n.VTEPMAC != ""}, {"directRouting", n.DirectRouting}} {
			if k.set {
				return conf.Invalid(k.key, "is a vxlan-overlay key; ipip-overlay does not use it (for direct routes to same-subnet peers set \"mode\": %q)", ModeCrossSubnet)
			}
		}
		switch strings.ToLower(n.Mode) {
		case "", strings.ToLower(ModeAlways):
			n.Mode = ModeAlways
		case strings.ToLower(ModeCrossSubnet):
			n.Mode, n.crossSubnet = ModeCrossSubnet, true
		default:
			return conf.Invalid("mode", "%q is not a mode; want %q (encapsulate to every peer) or %q (only to peers outside this node's subnet)", n.Mode, ModeAlways, ModeCrossSubnet)
		}
		return nil
	}
	if n.Mode != "" {
		return conf.Invalid("mode", "is an ipip-overlay key; vxlan-overlay's equivalent of %q is \"directRouting\": true", ModeCrossSubnet)
	}
	n.vni = 1
	if n.VNI != nil {
		if *n.VNI < 0 || *n.VNI > maxVNI {
			return conf.Invalid("vni", "%d is out of range; a VXLAN network identifier is 0 to %d", *n.VNI, maxVNI)
		}
		n.vni = *n.VNI
	}
	if n.Port == 0 {
		n.Port = defaultPort
	}
	if n.Port < 1 || n.Port > 65535 {
		return conf.Invalid("port", "%d is not a UDP port; want 1-65535 (default %d)", n.Port, defaultPort)
	}
	if n.VTEPMAC != "" {
		mac, err := parseMAC("vtepMAC", n.VTEPMAC)
		if err != nil {
			return err
		}
		n.vtepMAC = mac
	}
	n.crossSubnet = n.DirectRouting
	return nil
}

// parseCIDR parses a network prefix; host bits must be zero, so a typo such as 10.244.1.5/24 is caught.
func parseCIDR(field, s string, required bool) (netip.Prefix, error) {
	if s == "" {
		if required {
			return netip.Prefix{}, conf.Invalid(field, "is missing; give a CIDR such as \"10.244.1.0/24\"")
		}
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, conf.Invalid(field, "%q is not a CIDR; want e.g. \"10.244.1.0/24\"", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if p.Masked() != p {
		return netip.Prefix{}, conf.Invalid(field, "%s has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

func parseMAC(field, s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, conf.Invalid(field, "%q is not an Ethernet MAC address; want e.g. \"0e:4c:0a:00:00:01\"", s)
	}
	if mac[0]&1 != 0 {
		return nil, conf.Invalid(field, "%s is a multicast address; a VTEP MAC must be unicast", s)
	}
	return mac, nil
}
