package harness

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Cluster addressing. The IPv6 host part is written with the IPv4 host number's decimal digits
// (10.77.1.12 and fd77:1::12), so a person reading a trace can pair them at a glance.
const (
	segmentAv4       = "10.77.1.0/24"
	segmentAv6       = "fd77:1::/64"
	segmentBv4       = "10.77.2.0/24"
	segmentBv6       = "fd77:2::/64"
	routerHost       = 1  // the router's host number on both segments
	firstNodeHost    = 11 // node hosts are numbered from here
	lastNodeHost     = 254
	maxSegmentNodes  = lastNodeHost - firstNodeHost + 1
	underlayMTU      = 1500
	nodeIface        = "eth0"
	teardownDeadline = 10 * time.Second // how long RestartNode waits for the kernel to destroy a node's old namespace
)

// ClusterSpec says how many nodes a cluster has on each segment.
type ClusterSpec struct {
	Local  int // nodes on segment A, Nodes[0:Local]: one subnet with each other
	Remote int // nodes on segment B, Nodes[Local:]: reached from segment A through the router
}

func (s ClusterSpec) validate() error {
	switch {
	case s.Local < 0 || s.Remote < 0:
		return fmt.Errorf("cluster spec %+v: node counts must not be negative", s)
	case s.Local+s.Remote == 0:
		return fmt.Errorf("cluster spec %+v: no nodes", s)
	case s.Local > maxSegmentNodes || s.Remote > maxSegmentNodes:
		return fmt.Errorf("cluster spec %+v: at most %d nodes per segment", s, maxSegmentNodes)
	}
	return nil
}

// Node is one machine of a cluster: a namespace (so Do, Exec and Run act on it) with one underlay
// interface, lo up, and default routes of both families through the router. IP forwarding is off,
// as on a freshly installed host: the plugins under test must turn it on themselves.
type Node struct {
	NetNS
	Iface    string       // the underlay interface inside the node, "eth0", MTU 1500
	Addr     netip.Prefix // IPv4 underlay address with the segment's prefix length, e.g. 10.77.1.11/24
	Addr6    netip.Prefix // IPv6 underlay address, e.g. fd77:1::11/64
	Gateway  netip.Addr   // the router's IPv4 address on the node's segment
	Gateway6 netip.Addr   // the router's IPv6 address on the node's segment

	seg  segment
	port string // the veth end in the switch namespace, a port of seg's bridge
}

// Cluster is a small data centre made of network namespaces, for the overlay plugins' tests
// (vxlan-overlay, ipip-overlay, bgp-route): every node is a namespace standing for one machine, the
// place where a CNI plugin runs (node.Do(func() error { return rt.Add(...) })).
//
//	switch namespace: bridge br-a = segment A           bridge br-b = segment B
//	                  10.77.1.0/24, fd77:1::/64           10.77.2.0/24, fd77:2::/64
//	router            eth0 10.77.1.1, fd77:1::1  <-->     eth1 10.77.2.1, fd77:2::1
//	Nodes[0]          eth0 10.77.1.11, fd77:1::11         Nodes[Local]   eth0 10.77.2.11, fd77:2::11
//	Nodes[1]          eth0 10.77.1.12, fd77:1::12         Nodes[Local+1] eth0 10.77.2.12, fd77:2::12
//	...
//
// Nodes on one segment share a subnet (an overlay's direct routing works between them); a node on the
// other segment is one routed hop away (crossSubnet modes must encapsulate). Addresses repeat from one
// cluster to the next, which is harmless: each node is its own namespace, and only the namespaces'
// names, made with Unique, are global.
//
// NewCluster builds it; all of it is removed when the test ends.
type Cluster struct {
	Switch NetNS   // holds the segments' bridges and the switch ends of every veth pair
	Router NetNS   // eth0 on segment A, eth1 on segment B, forwarding IPv4 and IPv6
	Nodes  []*Node // Nodes[0:Spec.Local] on segment A, then Spec.Remote nodes on segment B
	Spec   ClusterSpec
}

// segment is one layer-2 network of the cluster: a bridge in the switch namespace and its subnets.
type segment struct {
	bridge     string // in the switch namespace
	routerLeg  string // the router's interface on it
	portPrefix string // switch-side veth names: portPrefix + node index
	net4, net6 netip.Prefix
}

func segments() [2]segment {
	return [2]segment{
		{bridge: "br-a", routerLeg: "eth0", portPrefix: "a", net4: netip.MustParsePrefix(segmentAv4), net6: netip.MustParsePrefix(segmentAv6)},
		{bridge: "br-b", routerLeg: "eth1", portPrefix: "b", net4: netip.MustParsePrefix(segmentBv4), net6: netip.MustParsePrefix(segmentBv6)},
	}
}

// host returns the addresses of host number h on s, with s's prefix lengths.
func (s segment) host(h int) (v4, v6 netip.Prefix) {
	b := s.net4.Addr().As4()
	b[3] = byte(h)
	v4 = netip.PrefixFrom(netip.AddrFrom4(b), s.net4.Bits())
	// "fd77:1::" + "12": the IPv6 host part spells the IPv4 host number.
	a6 := netip.MustParseAddr(strings.TrimSuffix(s.net6.Addr().String(), "::") + fmt.Sprintf("::%d", h))
	v6 = netip.PrefixFrom(a6, s.net6.Bits())
	return v4, v6
}

// NewCluster builds spec's topology: a switch namespace with one bridge per segment, a router
// namespace between the segments, and spec.Local + spec.Remote node namespaces, each wired to its
// segment's bridge by a veth pair. Every namespace is named by Unique and removed in t.Cleanup, also
// when the test fails.
func NewCluster(t testing.TB, spec ClusterSpec) *Cluster {
	t.Helper()
	if err := spec.validate(); err != nil {
		t.Fatal(err)
	}
	segs := segments()
	c := &Cluster{Spec: spec}

	c.Switch = NewNetNS(t, "sw")
	setupNamespace(t, c.Switch, false)
	for _, s := range segs {
		// No multicast snooping: the segment floods multicast (IPv6 neighbour discovery, VXLAN
		// groups) like a plain switch, whatever MLD/IGMP reports and queries the plugins cause.
		c.Switch.Run(t, "ip", "link", "add", s.bridge, "mtu", fmt.Sprint(underlayMTU), "type", "bridge", "mcast_snooping", "0")
		c.Switch.Run(t, "ip", "link", "set", s.bridge, "up")
	}

	c.Router = NewNetNS(t, "rtr")
	setupNamespace(t, c.Router, true)
	for _, s := range segs {
		attach(t, c.Switch, s.bridge, "r"+s.portPrefix, c.Router, s.routerLeg)
		v4, v6 := s.host(routerHost)
		c.Router.Run(t, "ip", "addr", "add", v4.String(), "dev", s.routerLeg)
		c.Router.Run(t, "ip", "addr", "add", v6.String(), "dev", s.routerLeg, "nodad")
	}

	for i := range spec.Local + spec.Remote {
		s, h := segs[0], firstNodeHost+i
		if i >= spec.Local {
			s, h = segs[1], firstNodeHost+i-spec.Local
		}
		v4, v6 := s.host(h)
		gw4, gw6 := s.host(routerHost)
		n := &Node{
			NetNS:    NewNetNS(t, "nd"),
			Iface:    nodeIface,
			Addr:     v4,
			Addr6:    v6,
			Gateway:  gw4.Addr(),
			Gateway6: gw6.Addr(),
			seg:      s,
			port:     fmt.Sprintf("%s%d", s.portPrefix, i),
		}
		c.setupNode(t, n)
		c.Nodes = append(c.Nodes, n)
	}
	return c
}

// RestartNode simulates a reboot of node i: its namespace is deleted, and with it everything in it
// (the plugins' bridges, tunnels and routes, the host ends of the pods' veths, whose pod ends then
// vanish too), then rebuilt with the same name, addresses and wiring. It returns once the old
// namespace is gone from the kernel, so a test can check at once what survived. The *Node keeps its
// identity (pointers a test holds stay valid) and is returned for convenience. The router and the
// node's segment peers forget the old interface's MAC address, so traffic to the node flows at once.
//
// A process still running inside the node (a server a test started there) keeps the old namespace
// alive; RestartNode fails the test then, as the reboot could not be simulated faithfully.
func (c *Cluster) RestartNode(t testing.TB, i int) *Node {
	t.Helper()
	if i < 0 || i >= len(c.Nodes) {
		t.Fatalf("RestartNode(%d): the cluster has %d nodes", i, len(c.Nodes))
	}
	n := c.Nodes[i]
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("restart node %d: ip netns del %s: %v: %s", i, n.Name, err, out)
	}
	// The kernel destroys a namespace's devices asynchronously, all in one batch, once the last
	// reference is gone: when the switch end of the node's veth disappears, the rest has gone too.
	deadline := time.Now().Add(teardownDeadline)
	for {
		if _, err := c.Switch.Exec("ip", "link", "show", "dev", n.port); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart node %d: the old namespace %s still exists %v after `ip netns del`: is a process still running in it?", i, n.Name, teardownDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("restart node %d: ip netns add %s: %v: %s", i, n.Name, err, out)
	}
	c.setupNode(t, n)
	c.forgetNeighbour(t, n)
	return n
}

// forgetNeighbour removes the neighbour entries the router and n's segment peers hold for n's
// addresses: they name the MAC address of the interface that died with the old namespace, and until
// they age out (5-10 s) packets to n would go nowhere. A real reboot takes longer than that. Entries
// a plugin made permanent are kept: `ip neigh flush` leaves them alone.
func (c *Cluster) forgetNeighbour(t testing.TB, n *Node) {
	t.Helper()
	flush := func(ns NetNS, dev string) {
		for _, a := range []netip.Addr{n.Addr.Addr(), n.Addr6.Addr()} {
			ns.Run(t, "ip", "neigh", "flush", "to", a.String(), "dev", dev)
		}
	}
	flush(c.Router, n.seg.routerLeg)
	for _, peer := range c.Nodes {
		if peer != n && peer.seg.bridge == n.seg.bridge {
			flush(peer.NetNS, peer.Iface)
		}
	}
}

// setupNode configures n's fresh namespace and wires it to its segment.
func (c *Cluster) setupNode(t testing.TB, n *Node) {
	t.Helper()
	setupNamespace(t, n.NetNS, false)
	attach(t, c.Switch, n.seg.bridge, n.port, n.NetNS, n.Iface)
	n.Run(t, "ip", "addr", "add", n.Addr.String(), "dev", n.Iface)
	n.Run(t, "ip", "addr", "add", n.Addr6.String(), "dev", n.Iface, "nodad")
	n.Run(t, "ip", "-4", "route", "add", "default", "via", n.Gateway.String(), "dev", n.Iface)
	n.Run(t, "ip", "-6", "route", "add", "default", "via", n.Gateway6.String(), "dev", n.Iface)
}

// setupNamespace brings lo up and sets n's forwarding and duplicate address detection. DAD is off for
// every interface made later in n: until it finishes (1-2 s) an IPv6 address cannot be used and the
// first packets of a test are lost. Forwarding is set either way because with
// net.core.devconf_inherit_init_net a new namespace would copy the host's.
func setupNamespace(t testing.TB, n NetNS, forward bool) {
	t.Helper()
	f := "0"
	if forward {
		f = "1"
	}
	n.Run(t, "sysctl", "-qw",
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
		"net.ipv4.ip_forward="+f,
		"net.ipv6.conf.all.forwarding="+f)
	n.Run(t, "ip", "link", "set", "lo", "up")
}

// attach wires n to bridge in sw by a veth pair: port is the end in sw, iface the end in n. Both
// ends are up with the underlay MTU.
func attach(t testing.TB, sw NetNS, bridge, port string, n NetNS, iface string) {
	t.Helper()
	mtu := fmt.Sprint(underlayMTU)
	sw.Run(t, "ip", "link", "add", port, "mtu", mtu, "type", "veth", "peer", "name", iface, "mtu", mtu, "netns", n.Name)
	sw.Run(t, "ip", "link", "set", port, "master", bridge, "up")
	n.Run(t, "sysctl", "-qw", "net.ipv6.conf."+iface+".accept_dad=0")
	n.Run(t, "ip", "link", "set", iface, "up")
}
