package harness

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

func TestClusterSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec    ClusterSpec
		wantErr bool
	}{
		{spec: ClusterSpec{Local: 3, Remote: 1}},
		{spec: ClusterSpec{Local: 1}},
		{spec: ClusterSpec{Remote: 2}},
		{spec: ClusterSpec{Local: maxSegmentNodes, Remote: maxSegmentNodes}},
		{spec: ClusterSpec{}, wantErr: true},
		{spec: ClusterSpec{Local: -1, Remote: 2}, wantErr: true},
		{spec: ClusterSpec{Local: maxSegmentNodes + 1}, wantErr: true},
	} {
		t.Run(fmt.Sprintf("%+v", tc.spec), func(t *testing.T) {
			if err := tc.spec.validate(); (err != nil) != tc.wantErr {
				t.Fatalf("validate() = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestClusterSegmentHost(t *testing.T) {
	segs := segments()
	for _, tc := range []struct {
		seg          int
		host         int
		want4, want6 string
	}{
		{seg: 0, host: routerHost, want4: "10.77.1.1/24", want6: "fd77:1::1/64"},
		{seg: 0, host: firstNodeHost, want4: "10.77.1.11/24", want6: "fd77:1::11/64"},
		{seg: 0, host: 20, want4: "10.77.1.20/24", want6: "fd77:1::20/64"},
		{seg: 1, host: firstNodeHost + 1, want4: "10.77.2.12/24", want6: "fd77:2::12/64"},
		{seg: 1, host: lastNodeHost, want4: "10.77.2.254/24", want6: "fd77:2::254/64"},
	} {
		v4, v6 := segs[tc.seg].host(tc.host)
		if v4.String() != tc.want4 || v6.String() != tc.want6 {
			t.Errorf("segment %d host %d = %s, %s; want %s, %s", tc.seg, tc.host, v4, v6, tc.want4, tc.want6)
		}
	}
}

// TestCluster builds a cluster with three nodes on segment A and one behind the router, checks its
// wiring and traffic (before and after a node restart), and then that nothing of it is left.
func TestCluster(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	var names []string
	t.Run("topology", func(t *testing.T) {
		c := NewCluster(t, ClusterSpec{Local: 3, Remote: 1})
		names = append(names, c.Switch.Name, c.Router.Name)
		for _, n := range c.Nodes {
			names = append(names, n.Name)
		}
		if len(c.Nodes) != 4 {
			t.Fatalf("%d nodes, want 4", len(c.Nodes))
		}
		for i, want := range []string{"10.77.1.11/24", "10.77.1.12/24", "10.77.1.13/24", "10.77.2.11/24"} {
			if got := c.Nodes[i].Addr.String(); got != want {
				t.Errorf("node %d: address %s, want %s", i, got, want)
			}
		}
		checkNodeSettings(t, c.Nodes[0])
		pingAll(t, c)
		checkRouted(t, c)

		// A pod on node 1: the host end of its veth lives in the node, and must vanish on a reboot.
		pod := NewNetNS(t, "pod")
		names = append(names, pod.Name)
		c.Nodes[1].Run(t, "ip", "link", "add", "vpod", "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
		t.Run("RestartNode", func(t *testing.T) {
			local := c.Nodes[1]
			if got := c.RestartNode(t, 1); got != local {
				t.Fatal("RestartNode returned another *Node")
			}
			if out, err := c.Nodes[1].Exec("ip", "link", "show", "vpod"); err == nil {
				t.Errorf("the pod's host-side veth survived the restart:\n%s", out)
			}
			if out, err := pod.Exec("ip", "link", "show", "eth0"); err == nil {
				t.Errorf("the pod's veth survived its node's restart:\n%s", out)
			}
			c.RestartNode(t, 3) // the remote node
			checkNodeSettings(t, c.Nodes[1])
			pingAll(t, c)
			checkRouted(t, c)
		})

		t.Run("PingDF", func(t *testing.T) {
			from := c.Nodes[0]
			for _, to := range []*Node{c.Nodes[1], c.Nodes[3]} {
				for _, tc := range []struct {
					addr     netip.Addr
					max      int // largest payload of a 1500-byte packet
					overhead string
				}{
					{addr: to.Addr.Addr(), max: 1472, overhead: "IPv4 20 + ICMP 8"},
					{addr: to.Addr6.Addr(), max: 1452, overhead: "IPv6 40 + ICMPv6 8"},
				} {
					if err := PingDF(t, from.NetNS, tc.addr.String(), tc.max); err != nil {
						t.Errorf("%d bytes (+ %s = 1500) to %s: %v", tc.max, tc.overhead, tc.addr, err)
					}
					if err := PingDF(t, from.NetNS, tc.addr.String(), tc.max+1); err == nil {
						t.Errorf("%d bytes to %s with DF passed a 1500-byte underlay", tc.max+1, tc.addr)
					}
				}
			}
		})

		t.Run("Iperf3", func(t *testing.T) {
			for _, tc := range []struct {
				name           string
				server, client *Node
				addr           netip.Addr
			}{
				{name: "same segment v4", server: c.Nodes[0], client: c.Nodes[2], addr: c.Nodes[0].Addr.Addr()},
				{name: "routed v6", server: c.Nodes[3], client: c.Nodes[0], addr: c.Nodes[3].Addr6.Addr()},
			} {
				bps, err := Iperf3(t, tc.server.NetNS, tc.client.NetNS, tc.addr.String(), 1)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if bps <= 0 {
					t.Errorf("%s: %v bit/s", tc.name, bps)
				}
				t.Logf("%s: %.2f Gbit/s", tc.name, bps/1e9)
			}
			// The one-shot servers are gone, so the node can still restart.
			c.RestartNode(t, 0)
			pingAll(t, c)
		})
	})

	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, name := range names {
		if strings.Contains(string(out), name) {
			t.Errorf("namespace %s left after the test:\n%s", name, out)
		}
	}
}

// checkNodeSettings checks what a plugin under test may rely on finding, and what it must do itself.
func checkNodeSettings(t *testing.T, n *Node) {
	t.Helper()
	for _, tc := range []struct{ cmd, want string }{
		{cmd: "sysctl -n net.ipv4.ip_forward", want: "0"},
		{cmd: "sysctl -n net.ipv6.conf.all.forwarding", want: "0"},
		{cmd: "sysctl -n net.ipv6.conf." + n.Iface + ".accept_dad", want: "0"},
		{cmd: "cat /sys/class/net/" + n.Iface + "/mtu", want: "1500"},
	} {
		if got := strings.TrimSpace(n.Run(t, strings.Fields(tc.cmd)...)); got != tc.want {
			t.Errorf("node %s: %s = %s, want %s", n.Name, tc.cmd, got, tc.want)
		}
	}
	if out := n.Run(t, "ip", "-6", "addr", "show", "dev", n.Iface); strings.Contains(out, "tentative") {
		t.Errorf("node %s: tentative IPv6 address:\n%s", n.Name, out)
	}
}

// pingAll pings every node from every other one over IPv4 and IPv6.
func pingAll(t *testing.T, c *Cluster) {
	t.Helper()
	for i, from := range c.Nodes {
		for j, to := range c.Nodes {
			if i == j {
				continue
			}
			for _, a := range []netip.Addr{to.Addr.Addr(), to.Addr6.Addr()} {
				if err := Ping(t, from.NetNS, a.String()); err != nil {
					t.Errorf("node %d -> node %d (%s): %v", i, j, a, err)
				}
			}
		}
	}
}

// checkRouted checks that the remote node is one routed hop away from node 0, and node 1 on-link.
func checkRouted(t *testing.T, c *Cluster) {
	t.Helper()
	from, local, remote := c.Nodes[0], c.Nodes[1], c.Nodes[3]
	for _, tc := range []struct {
		to, via netip.Addr
	}{
		{to: remote.Addr.Addr(), via: from.Gateway},
		{to: remote.Addr6.Addr(), via: from.Gateway6},
		{to: local.Addr.Addr()},
		{to: local.Addr6.Addr()},
	} {
		out := from.Run(t, "ip", "route", "get", tc.to.String())
		routed := strings.Contains(out, " via ")
		if tc.via.IsValid() != routed || (routed && !strings.Contains(out, " via "+tc.via.String()+" ")) {
			t.Errorf("route to %s, want via %v: %s", tc.to, tc.via, out)
		}
	}
	// The reply from the remote node crossed the router once: its TTL went from 64 to 63.
	for _, a := range []netip.Addr{remote.Addr.Addr(), remote.Addr6.Addr()} {
		out := from.Run(t, "ping", "-c1", "-W2", a.String())
		if !strings.Contains(out, "ttl=63") {
			t.Errorf("ping %s: want ttl=63 (one router hop):\n%s", a, out)
		}
	}
}
