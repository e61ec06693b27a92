package cluster

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// AnnotationPrefix is where netloom's annotations on a Node live; each node patches only its own.
const AnnotationPrefix = "netloom.io/"

// Annotations a node's agent publishes on its own Node: the mode it runs; in the tunnelled modes the
// tunnel device's address (the source of the node's own packets into the overlay); in vxlan mode its
// VTEP's MAC (the one its peers' FDB entries point at).
const (
	AnnotationMode     = AnnotationPrefix + "mode"
	AnnotationTunnelIP = AnnotationPrefix + "tunnel-ip"
	AnnotationVTEPMAC  = AnnotationPrefix + "vtep-mac"
)

// Node is what the agent needs of a Node object.
type Node struct {
	Name        string
	PodCIDRs    []netip.Prefix // spec.podCIDRs (or the older spec.podCIDR), at most one per family
	InternalIPs []netip.Addr   // status.addresses of type InternalIP
	Annotations map[string]string
	Labels      map[string]string // bgp mode's routers select nodes by them
	// RuntimeVersion is status.nodeInfo.containerRuntimeVersion ("containerd://2.1.4"), which decides
	// the conflist's cniVersion.
	RuntimeVersion string
}

// NodeFrom reads n. A pod CIDR or address that does not parse is an error naming the node and field:
// the node is left out (as a peer) rather than guessed at.
func NodeFrom(n *corev1.Node) (Node, error) {
	out := Node{Name: n.Name, Annotations: map[string]string{}, Labels: n.Labels, RuntimeVersion: n.Status.NodeInfo.ContainerRuntimeVersion}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for i, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil || p != p.Masked() {
			return Node{}, fmt.Errorf("node %s: spec.podCIDRs[%d] %q is not a network in CIDR form", n.Name, i, s)
		}
		out.PodCIDRs = append(out.PodCIDRs, p)
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			return Node{}, fmt.Errorf("node %s: InternalIP %q is not an IP address", n.Name, a.Address)
		}
		out.InternalIPs = append(out.InternalIPs, ip.Unmap())
	}
	for k, v := range n.Annotations {
		if len(k) > len(AnnotationPrefix) && k[:len(AnnotationPrefix)] == AnnotationPrefix {
			out.Annotations[k] = v
		}
	}
	return out, nil
}

// InternalIP returns the node's first InternalIP of the family of p, if it has one.
func (n Node) InternalIP(p netip.Prefix) (netip.Addr, bool) {
	for _, a := range n.InternalIPs {
		if a.Is4() == p.Addr().Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// v4 returns the node's IPv4 pod CIDR and IPv4 InternalIP, when it has both.
func (n Node) v4() (netip.Prefix, netip.Addr, bool) {
	for _, p := range n.PodCIDRs {
		if p.Addr().Is4() {
			ip, ok := n.InternalIP(p)
			return p, ip, ok
		}
	}
	return netip.Prefix{}, netip.Addr{}, false
}

// Equal reports whether two readings of a node ask the same of the datapath.
func (n Node) Equal(o Node) bool {
	return n.Name == o.Name && slices.Equal(n.PodCIDRs, o.PodCIDRs) && slices.Equal(n.InternalIPs, o.InternalIPs) &&
		n.Annotations[AnnotationVTEPMAC] == o.Annotations[AnnotationVTEPMAC]
}
