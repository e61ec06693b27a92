// Package portmap forwards host ports to pods (Kubernetes hostPort, `podman run -p`): the model every
// backend implements, and the steps that do not depend on the backend (UDP conntrack flush,
// route_localnet). The backends live in portmap/nftables and portmap/iptables.
//
// Ownership: every object a backend installs is keyed by the attachment (firewall.Key: network,
// container ID, interface) and carries the container ID in a comment a person can read. A host port
// (protocol, host address, port) belongs to at most one attachment: a second attachment asking for it
// gets a *ConflictError naming the owner, instead of silently shadowing it as the reference plugin does.
// An all-addresses mapping and a mapping for one host address may share a port; the specific one wins
// for its address, as in the kernel's own socket binding.
package portmap

import (
	"fmt"
	"net/netip"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
)

// Protocols a mapping may name, as runtimeConfig.portMappings spells them.
const (
	TCP  = "tcp"
	UDP  = "udp"
	SCTP = "sctp"
)

// DefaultMarkMasqBit is the reference's default "markMasqBit": Kubernetes uses 14 and 15, Calico 20-31.
const DefaultMarkMasqBit = 13

// Mapping is one forwarded port for one IP family: traffic to HostIP:HostPort (any local address of
// PodIP's family when HostIP is invalid, i.e. the zero netip.Addr) goes to PodIP:PodPort.
type Mapping struct {
	Protocol string     // TCP, UDP or SCTP
	HostIP   netip.Addr // zero: every local address of PodIP's family
	HostPort uint16
	PodIP    netip.Addr
	PodPort  uint16
	// PodSubnet is the subnet of PodIP from the IPAM result, masked (e.g. 10.22.0.0/24). With Options.SNAT, traffic
	// to the mapping from inside this subnet (the pod itself through hairpin, or another pod on the same
	// bridge) and from the host's loopback is masqueraded, so replies come back through the host.
	PodSubnet netip.Prefix
}

// HostKey is what may be owned by one attachment only.
type HostKey struct {
	Protocol string
	HostIP   netip.Addr // zero: all addresses
	HostPort uint16
}

// Key returns the host side of m.
func (m Mapping) Key() HostKey { return HostKey{m.Protocol, m.HostIP, m.HostPort} }

func (k HostKey) String() string {
	if !k.HostIP.IsValid() {
		return fmt.Sprintf("%s/%d (all addresses)", k.Protocol, k.HostPort)
	}
	return fmt.Sprintf("%s %s", k.Protocol, netip.AddrPortFrom(k.HostIP, k.HostPort))
}

func (m Mapping) String() string {
	return fmt.Sprintf("%s -> %s", m.Key(), netip.AddrPortFrom(m.PodIP, m.PodPort))
}

// Options are the network-wide keys of the portmap config, already validated.
type Options struct {
	// SNAT masquerades hairpin, same-subnet and localhost traffic to the mappings ("snat", default true).
	SNAT bool
	// MasqAll masquerades every forwarded connection, not only the ones SNAT covers ("masqAll").
	MasqAll bool
	// MarkMasqBit is the packet-mark bit the iptables backend uses to ask for masquerading (0-31);
	// ExternalSetMarkChain, when set, is a chain of someone else's (e.g. KUBE-MARK-MASQ) that the
	// iptables backend jumps to instead of its own CNI-HOSTPORT-SETMARK. The nftables backend
	// masquerades directly and ignores both.
	MarkMasqBit          int
	ExternalSetMarkChain string
	// ConditionsV4 and ConditionsV6 restrict which packets are considered for forwarding at all, in the
	// backend's own syntax: iptables match arguments (["-d", "192.0.2.0/24"]) or nftables expressions
	// (["ip daddr 192.0.2.0/24"]). As in the reference, the iptables backend puts them on each pod's
	// jump (per attachment), the nftables backend on its hook rules (node-wide: the last ADD's win).
	ConditionsV4, ConditionsV6 []string
}

// Mapper installs and removes one attachment's port forwarding. Implementations are safe to use from
// many processes at once (kubelet runs many ADDs in parallel) and never touch objects whose comment
// names another attachment.
type Mapper interface {
	// Add installs k's mappings (all of k's, for both families, in one go), replacing any of k's earlier
	// ones. When another attachment owns one of the host keys it changes nothing and returns a
	// *ConflictError. Idempotent for the same k and mappings.
	Add(k firewall.Key, ms []Mapping, o Options) error
	// Remove deletes everything k installed. It needs neither the mappings nor the pod's addresses
	// (DEL may come without prevResult, or after a reboot flushed the rules) and succeeds when nothing
	// is left. hint, when not empty, lists the host keys k is believed to own, so a backend can find them
	// without listing every mapping on the node; a backend must still remove only what k owns.
	Remove(k firewall.Key, hint []HostKey) error
	// Check reports what of k's mappings is missing or different.
	Check(k firewall.Key, ms []Mapping, o Options) error
	// GC removes the mappings of network whose attachment is not in valid.
	GC(network string, valid map[conf.Attachment]bool) error
}

// ConflictError says a host port is already forwarded to another attachment.
type ConflictError struct {
	Key   HostKey
	Owner string // the owner as its comment names it: "network/containerID/ifname" where known
	// PodIP is the address the owner's forwarding goes to (invalid when unknown); OwnerRef is what the
	// backend that found the conflict needs to evict the owner (Evicter.Evict) once it is known to be
	// gone.
	PodIP    netip.Addr
	OwnerRef string
	// HeldIn, when set, is the network namespace that still holds PodIP: why the owner counts as alive.
	HeldIn string
}

func (e *ConflictError) Error() string {
	msg := fmt.Sprintf("host port %s is already forwarded to %s", e.Key, e.Owner)
	if e.PodIP.IsValid() && e.HeldIn != "" {
		msg += fmt.Sprintf(", whose pod address %s is still in use (network namespace %s)", e.PodIP, e.HeldIn)
	}
	return msg + "; pick another hostPort or remove that pod first"
}

// Evicter is a backend that can remove the forwarding of the owner a *ConflictError names, so a host
// port held by an attachment that no longer exists can be taken over.
type Evicter interface {
	// Evict removes everything of the owner that c names (c.OwnerRef), and nothing else. It succeeds
	// when that owner has nothing left.
	Evict(c *ConflictError) error
}
