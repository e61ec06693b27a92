package integration

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/test/harness"
)

// TestBGPRouteWithFRR: node A runs netloomd and pods; node B runs FRR (bgpd, and zebra installing
// what it learns) with a pod subnet of its own. B's kernel learns A's pod /32s and pod CIDR via A, A's
// kernel learns B's subnet (protocol 79); traffic flows both ways; FRR stopping takes its route out of
// A's kernel and its restart brings it back; DEL withdraws and leaves the other pod's traffic alone.
func TestBGPRouteWithFRR(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	a, b, frr, _ := twoNodes(t, frrPeer)
	bSubnet := peerSubnet
	if line := harness.WaitRoute(t, b.NetNS, a.podCIDR.String(), true, 10*time.Second); !strings.Contains(line, "via "+a.Addr.Addr().String()) {
		t.Errorf("B's (zebra's) route to A's pod CIDR: %q, want via %s", line, a.Addr.Addr())
	}

	start := time.Now()
	p1 := a.mustAdd(t)
	line := harness.WaitRoute(t, b.NetNS, host32(p1.ip), true, 10*time.Second)
	t.Logf("FRR: pod ADD on A to its /32 in B's kernel: %v (%s)", time.Since(start).Round(time.Millisecond), line)
	if !strings.Contains(line, "via "+a.Addr.Addr().String()) {
		t.Errorf("B's route to the pod: %q, want via %s", line, a.Addr.Addr())
	}
	p2 := a.mustAdd(t)
	harness.WaitRoute(t, b.NetNS, host32(p2.ip), true, 10*time.Second)

	t.Run("traffic both ways", func(t *testing.T) {
		for _, p := range []*bgpPod{p1, p2} {
			if err := harness.Ping(t, p.NetNS, peerGateway); err != nil {
				t.Errorf("pod %s on A -> B's subnet: %v", p.ip, err)
			}
			if err := harness.Ping(t, b.NetNS, p.ip.String()); err != nil {
				t.Errorf("B -> pod %s on A: %v", p.ip, err)
			}
		}
	})

	t.Run("FRR stops, then restarts", func(t *testing.T) {
		frr.Stop(t)
		start := time.Now()
		harness.WaitRoute(t, a.NetNS, bSubnet, false, 15*time.Second)
		t.Logf("FRR stopped: its route left A's kernel after %v", time.Since(start).Round(100*time.Millisecond))
		frr.Restart(t)
		start = time.Now()
		harness.WaitRoute(t, a.NetNS, bSubnet, true, 20*time.Second)
		t.Logf("FRR restarted: its route back in A's kernel after %v", time.Since(start).Round(100*time.Millisecond))
		harness.WaitRoute(t, b.NetNS, host32(p2.ip), true, 15*time.Second)
		if err := harness.Ping(t, p2.NetNS, peerGateway); err != nil {
			t.Errorf("pod on A -> B's subnet after FRR's restart: %v", err)
		}
	})

	t.Run("DEL withdraws, the other pod keeps its traffic", func(t *testing.T) {
		// Delete the pod whose bridge port has the bridge's MAC, if one has: a bridge whose MAC follows
		// its lowest port's changes it when that port leaves, and the other pod, whose neighbour entry
		// for its gateway holds the old MAC, loses its traffic until that entry expires. (The reference
		// bridge plugin pins the bridge's MAC for this reason.)
		gone, stays := p1, p2
		mac := strings.TrimSpace(a.Run(t, "cat", "/sys/class/net/nlbgp0/address"))
		if hostPortMAC(t, a, p2) == mac {
			gone, stays = p2, p1
		}
		if err := a.del(t, gone); err != nil {
			t.Fatal(err)
		}
		harness.WaitRoute(t, b.NetNS, host32(gone.ip), false, 10*time.Second)
		harness.WaitRoute(t, b.NetNS, host32(stays.ip), true, time.Second)
		if after := strings.TrimSpace(a.Run(t, "cat", "/sys/class/net/nlbgp0/address")); after != mac {
			t.Errorf("the bridge's MAC changed when a pod left: %s -> %s", mac, after)
		}
		if err := harness.Ping(t, stays.NetNS, peerGateway); err != nil {
			t.Errorf("the remaining pod on A -> B's subnet after the DEL: %v", err)
		}
	})
}

// TestBGPRouteGoBGPDSpeaker: bgp-route announces through a stock gobgpd (its API on the node's
// loopback) instead of netloomd; gobgpd peers with BIRD on node B, which installs the pod /32s.
// CHECK, DEL and STATUS work against gobgpd; with gobgpd stopped STATUS fails and ADD fails with code 11.
func TestBGPRouteGoBGPDSpeaker(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	a := newBGPNode(t, c.Nodes[0], "10.246.1.0/24")
	b := c.Nodes[1]

	bird := harness.StartBIRD(t, b.NetNS, mustBIRD(t, harness.BGPSpec{
		RouterID: b.Addr.Addr(), ASN: 65002, ExportToKernel: true,
		Neighbors: []harness.BGPNeighbor{{Address: a.Addr.Addr(), ASN: 65001, HoldTime: 3 * time.Second}},
	}))
	cfg, err := harness.GoBGPConfig(harness.BGPSpec{
		RouterID: a.Addr.Addr(), ASN: 65001,
		Neighbors: []harness.BGPNeighbor{{Address: b.Addr.Addr(), ASN: 65002, HoldTime: 3 * time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := harness.StartGoBGPD(t, a.NetNS, cfg, "")
	a.speaker = d.Speaker()
	if a.speaker != harness.DefaultGoBGPAPI {
		t.Fatalf("gobgpd's speaker address %q, want %q", a.speaker, harness.DefaultGoBGPAPI)
	}
	bird.WaitSessionUp(t, a.Addr.Addr(), 20*time.Second)

	pods := []*bgpPod{a.mustAdd(t), a.mustAdd(t)}
	for _, p := range pods {
		line := harness.WaitRoute(t, b.NetNS, host32(p.ip), true, 10*time.Second)
		if !strings.Contains(line, "via "+a.Addr.Addr().String()) {
			t.Errorf("B's route to pod %s: %q, want via %s", p.ip, line, a.Addr.Addr())
		}
	}

	t.Run("B reaches the pods", func(t *testing.T) {
		for _, p := range pods {
			if err := harness.Ping(t, b.NetNS, p.ip.String()); err != nil {
				t.Errorf("B -> pod %s on A: %v", p.ip, err)
			}
		}
	})

	t.Run("CHECK, DEL and STATUS", func(t *testing.T) {
		for _, p := range pods {
			if err := a.check(t, p); err != nil {
				t.Errorf("CHECK of pod %s: %v", p.ip, err)
			}
		}
		if err := a.del(t, pods[0]); err != nil {
			t.Fatal(err)
		}
		harness.WaitRoute(t, b.NetNS, host32(pods[0].ip), false, 10*time.Second)
		harness.WaitRoute(t, b.NetNS, host32(pods[1].ip), true, time.Second)
		if err := a.status(t); err != nil {
			t.Errorf("STATUS: %v", err)
		}
	})

	t.Run("gobgpd stopped", func(t *testing.T) {
		d.Stop(t)
		if err := a.status(t); err == nil {
			t.Errorf("STATUS with gobgpd stopped passed")
		}
		p, err := a.add(t)
		if err == nil || conf.Code(err) != conf.CodeTryAgainLater {
			t.Errorf("ADD with gobgpd stopped: %v, want code %d", err, conf.CodeTryAgainLater)
		}
		if err := a.del(t, p); err != nil {
			t.Errorf("DEL of the failed ADD (speaker down): %v", err)
		}
	})
}

// TestBGPRouteReflector: three netloomd nodes in AS 65000, each peering over iBGP only with BIRD on a
// fourth node, a route reflector. Each node learns the others' pod CIDRs and pod /32s with their
// original next hops (the originating node, not the reflector), and pods reach each other across all
// pairs.
func TestBGPRouteReflector(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 4})
	rr := c.Nodes[3]
	var clients []harness.BGPNeighbor
	nodes := make([]*bgpNode, 3)
	for i := range nodes {
		nodes[i] = newBGPNode(t, c.Nodes[i], fmt.Sprintf("10.246.%d.0/24", i+1))
		clients = append(clients, harness.BGPNeighbor{Address: nodes[i].Addr.Addr(), ASN: 65000, HoldTime: 3 * time.Second, RRClient: true})
	}
	bird := harness.StartBIRD(t, rr.NetNS, mustBIRD(t, harness.BGPSpec{RouterID: rr.Addr.Addr(), ASN: 65000, Neighbors: clients}))
	for _, n := range nodes {
		d := harness.StartNetloomd(t, n.NetNS, n.netloomdConfig(65000, neighbor(rr.Addr.Addr(), 65000)))
		n.speaker = d.Speaker()
	}
	for _, n := range nodes {
		bird.WaitSessionUp(t, n.Addr.Addr(), 20*time.Second)
	}
	pods := make([]*bgpPod, len(nodes))
	for i, n := range nodes {
		pods[i] = n.mustAdd(t)
	}

	// Every node's kernel: the other two pod CIDRs and pod /32s, via the node that originates them.
	for i, n := range nodes {
		for j, o := range nodes {
			if i == j {
				continue
			}
			for _, p := range []string{o.podCIDR.String(), host32(pods[j].ip)} {
				line := harness.WaitRoute(t, n.NetNS, p, true, 15*time.Second)
				if want := "via " + o.Addr.Addr().String() + " "; !strings.Contains(line+" ", want) || !strings.Contains(line, "proto 79") {
					t.Errorf("%s's route to %s: %q, want via %s proto 79 (the reflector keeps the next hop)", n.Name, p, line, o.Addr.Addr())
				}
			}
		}
	}

	for i := range nodes {
		for j := range nodes {
			if i == j {
				continue
			}
			if err := harness.Ping(t, pods[i].NetNS, pods[j].ip.String()); err != nil {
				t.Errorf("pod %s on node %d -> pod %s on node %d: %v", pods[i].ip, i, pods[j].ip, j, err)
			}
		}
	}
}

// TestBGPMD5WrongPassword: netloomd's neighbour has TCP MD5 password "alpha", BIRD's "beta": the
// session never comes up, no route of the peer reaches the kernel and netloomd's log names TCP MD5.
// BIRD restarted with "alpha" then brings the session and the route up.
func TestBGPMD5WrongPassword(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	a := newBGPNode(t, c.Nodes[0], "10.246.1.0/24")
	b := c.Nodes[1]
	bSubnet := "10.247.2.0/24"
	spec := func(password string) harness.BGPSpec {
		return harness.BGPSpec{
			RouterID: b.Addr.Addr(), ASN: 65002,
			Originate: []netip.Prefix{mustPrefix(bSubnet)},
			Neighbors: []harness.BGPNeighbor{{Address: a.Addr.Addr(), ASN: 65001, HoldTime: 3 * time.Second, Password: password}},
		}
	}

	bird := harness.StartBIRD(t, b.NetNS, mustBIRD(t, spec("beta")))
	d := harness.StartNetloomd(t, a.NetNS, a.netloomdConfig(65001, neighbor(b.Addr.Addr(), 65002, "password", "alpha")))
	time.Sleep(6 * time.Second)
	if up, state := d.SessionEstablished(t, b.Addr.Addr()); up {
		t.Errorf("session with mismatched MD5 passwords established: %s", state)
	}
	if up, state := bird.SessionEstablished(t, a.Addr.Addr()); up {
		t.Errorf("BIRD: session with mismatched MD5 passwords established: %s", state)
	}
	if r := a.Run(t, "ip", "route", "show", bSubnet); strings.TrimSpace(r) != "" {
		t.Errorf("B's route in A's kernel without a session: %q", r)
	}
	logText, err := os.ReadFile(d.Logs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logText), "TCP MD5") {
		t.Errorf("netloomd's log does not mention TCP MD5:\n%s", logText)
	}

	// The same neighbour comes up once B's password matches.
	bird.Stop(t)
	bird = harness.StartBIRD(t, b.NetNS, mustBIRD(t, spec("alpha")))
	took := d.WaitSessionUp(t, b.Addr.Addr(), 20*time.Second)
	t.Logf("session up %v after BIRD started with the matching password", took.Round(100*time.Millisecond))
	bird.WaitSessionUp(t, a.Addr.Addr(), 5*time.Second)
	harness.WaitRoute(t, a.NetNS, bSubnet, true, 10*time.Second)
}

// hostPortMAC is the MAC of pod p's host-side veth on node n (the peer of the pod's eth0).
func hostPortMAC(t *testing.T, n *bgpNode, p *bgpPod) string {
	t.Helper()
	idx := strings.TrimSpace(p.Run(t, "cat", "/sys/class/net/eth0/iflink"))
	for _, l := range strings.Split(n.Run(t, "ip", "-o", "link", "show"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == idx+":" {
			if _, rest, ok := strings.Cut(l, "link/ether "); ok {
				return strings.Fields(rest)[0]
			}
		}
	}
	t.Fatalf("pod %s: no host veth with index %s on %s", p.ip, idx, n.Name)
	return ""
}
