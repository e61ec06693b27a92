package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/test/harness"
)

// TestBGPRouteWithBIRD: node A runs netloomd and pods (bridge + host-local + bgp-route); node B runs
// BIRD with a pod subnet of its own. Each kernel learns the other's routes, pods on A and addresses on B
// reach each other both ways; DEL withdraws; CHECK and GC; the peer pausing past its hold time takes its
// routes out of A's kernel and resuming brings them back; a netloomd restart re-learns and re-announces
// everything; while netloomd is down ADD fails with code 11 and leaves nothing, and STATUS fails.
func TestBGPRouteWithBIRD(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	a, b, bird, d := twoNodes(t, birdPeer)
	bSubnet := peerSubnet
	// B's kernel learns A's pod CIDR from BIRD.
	harness.WaitRoute(t, b.NetNS, a.podCIDR.String(), true, 10*time.Second)

	start := time.Now()
	p1 := a.mustAdd(t)
	line := harness.WaitRoute(t, b.NetNS, host32(p1.ip), true, 10*time.Second)
	t.Logf("pod ADD on A to its /32 in B's kernel: %v (%s)", time.Since(start).Round(time.Millisecond), line)
	if !strings.Contains(line, "via "+a.Addr.Addr().String()) {
		t.Errorf("B's route to the pod: %q, want via %s", line, a.Addr.Addr())
	}
	p2 := a.mustAdd(t)
	harness.WaitRoute(t, b.NetNS, host32(p2.ip), true, 10*time.Second)

	t.Run("traffic both ways", func(t *testing.T) {
		if err := harness.Ping(t, p1.NetNS, peerGateway); err != nil {
			t.Errorf("pod on A -> B's subnet: %v", err)
		}
		if err := harness.Ping(t, b.NetNS, p2.ip.String()); err != nil {
			t.Errorf("B -> pod on A: %v", err)
		}
	})

	t.Run("CHECK and STATUS", func(t *testing.T) {
		for _, p := range []*bgpPod{p1, p2} {
			if err := a.check(t, p); err != nil {
				t.Errorf("CHECK: %v", err)
			}
		}
		if err := a.status(t); err != nil {
			t.Errorf("STATUS: %v", err)
		}
		// A path withdrawn behind bgp-route's back fails CHECK, naming it.
		d.GoBGP(t, "global", "rib", "del", host32(p2.ip), "-a", "ipv4")
		if err := a.check(t, p2); err == nil || !strings.Contains(err.Error(), host32(p2.ip)) {
			t.Errorf("CHECK after the path was withdrawn: %v, want an error naming %s", err, host32(p2.ip))
		}
		d.GoBGP(t, "global", "rib", "add", host32(p2.ip), "-a", "ipv4")
	})

	t.Run("peer pauses past its hold time, then resumes", func(t *testing.T) {
		bird.Pause(t)
		start := time.Now()
		harness.WaitRoute(t, a.NetNS, bSubnet, false, 15*time.Second)
		t.Logf("B silent: its route left A's kernel after %v (hold time 3 s)", time.Since(start).Round(100*time.Millisecond))
		bird.Resume(t)
		harness.WaitRoute(t, a.NetNS, bSubnet, true, 15*time.Second)
		harness.WaitRoute(t, b.NetNS, host32(p1.ip), true, 15*time.Second)
	})

	t.Run("netloomd restarts", func(t *testing.T) {
		d.Stop(t)
		if r := a.Run(t, "ip", "route", "show", "proto", "79"); strings.TrimSpace(r) != "" {
			t.Errorf("routes of protocol 79 left after SIGTERM:\n%s", r)
		}
		harness.WaitRoute(t, b.NetNS, host32(p1.ip), false, 10*time.Second)

		// While the speaker is down: STATUS fails, ADD fails with code 11 and announces nothing.
		if err := a.status(t); err == nil {
			t.Errorf("STATUS with netloomd stopped passed")
		}
		p3, err := a.add(t)
		if err == nil || conf.Code(err) != conf.CodeTryAgainLater {
			t.Errorf("ADD with netloomd stopped: %v, want code %d", err, conf.CodeTryAgainLater)
		}
		if _, serr := os.Stat(filepath.Join(a.stateDir(), a.name, p3.id+".eth0")); serr == nil {
			t.Errorf("a record was left for the failed ADD")
		}
		if err := a.del(t, p3); err != nil {
			t.Errorf("DEL of the failed ADD (speaker down): %v", err)
		}

		d.Restart(t)
		harness.WaitRoute(t, a.NetNS, bSubnet, true, 15*time.Second)
		for _, p := range []*bgpPod{p1, p2} {
			harness.WaitRoute(t, b.NetNS, host32(p.ip), true, 15*time.Second)
		}
		if err := harness.Ping(t, p1.NetNS, peerGateway); err != nil {
			t.Errorf("pod on A -> B's subnet after the restart: %v", err)
		}
	})

	t.Run("netloomd crashes and restarts", func(t *testing.T) {
		// SIGKILL: no clean stop, the kernel routes stay. The new process adopts them: the route to B's
		// subnet never leaves A's kernel while the session comes back, and B gets the pods back.
		// (B drops A's paths at once, the TCP session being closed: without graceful restart, which
		// netloomd does not negotiate, B's way back to the pods is gone until the session returns.)
		d.Kill(t)
		if out := a.Run(t, "ip", "route", "show", bSubnet); !strings.Contains(out, "proto 79") {
			t.Errorf("the route to B's subnet left A's kernel when netloomd was killed: %q", out)
		}
		done := make(chan string)
		go func() {
			var gone string
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if out, _ := a.Exec("ip", "route", "show", bSubnet); strings.TrimSpace(out) == "" {
					gone = "the route to B's subnet left A's kernel during the restart"
					break
				}
			}
			done <- gone
		}()
		d.Restart(t)
		for _, p := range []*bgpPod{p1, p2} {
			harness.WaitRoute(t, b.NetNS, host32(p.ip), true, 15*time.Second)
		}
		if gone := <-done; gone != "" {
			t.Error(gone)
		}
	})

	t.Run("DEL and GC withdraw", func(t *testing.T) {
		if err := a.del(t, p1); err != nil {
			t.Fatal(err)
		}
		if err := a.del(t, p1); err != nil {
			t.Errorf("second DEL: %v", err)
		}
		harness.WaitRoute(t, b.NetNS, host32(p1.ip), false, 10*time.Second)
		// GC with no valid attachment withdraws p2's path (libcni's GC also DELs cached attachments;
		// GCOnly sends only the plugins' GC).
		if err := a.Do(func() error { return a.rt.GCOnly(t, a.conflist(), nil) }); err != nil {
			t.Fatalf("GC: %v", err)
		}
		harness.WaitRoute(t, b.NetNS, host32(p2.ip), false, 10*time.Second)
		if ents, _ := os.ReadDir(filepath.Join(a.stateDir(), a.name)); len(ents) != 0 {
			t.Errorf("records left after DEL and GC: %v", ents)
		}
		// The node's pod CIDR stays: netloomd originates it.
		harness.WaitRoute(t, b.NetNS, a.podCIDR.String(), true, time.Second)
	})
}

func mustBIRD(t *testing.T, s harness.BGPSpec) string {
	t.Helper()
	cfg, err := harness.BIRDConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestBGPRouteNodeMode: with "announce": "node", the first pod's ADD makes sure the node's pod CIDR is
// announced (netloomd does not originate it here), no /32 is announced, and DEL leaves the CIDR for the
// node's other pods.
func TestBGPRouteNodeMode(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	a := newBGPNode(t, c.Nodes[0], "10.246.1.0/24")
	a.extra = map[string]any{"announce": "node"}
	b := c.Nodes[1]
	bird := harness.StartBIRD(t, b.NetNS, mustBIRD(t, harness.BGPSpec{
		RouterID: b.Addr.Addr(), ASN: 65002, ExportToKernel: true,
		Neighbors: []harness.BGPNeighbor{{Address: a.Addr.Addr(), ASN: 65001, HoldTime: 3 * time.Second}},
	}))
	cfg := a.netloomdConfig(65001, neighbor(b.Addr.Addr(), 65002))
	cfg["bgp"].(map[string]any)["originate"] = []string{}
	d := harness.StartNetloomd(t, a.NetNS, cfg)
	a.speaker = d.Speaker()
	bird.WaitSessionUp(t, a.Addr.Addr(), 15*time.Second)
	if out := b.Run(t, "ip", "route", "show", a.podCIDR.String()); strings.TrimSpace(out) != "" {
		t.Fatalf("B has A's pod CIDR before any pod: %q", out)
	}
	p := a.mustAdd(t)
	harness.WaitRoute(t, b.NetNS, a.podCIDR.String(), true, 10*time.Second)
	if err := harness.Ping(t, b.NetNS, p.ip.String()); err != nil {
		t.Errorf("B -> pod through the pod CIDR route: %v", err)
	}
	if out := b.Run(t, "ip", "route", "show", host32(p.ip)); strings.TrimSpace(out) != "" {
		t.Errorf("node mode announced the pod's /32: %q", out)
	}
	if err := a.check(t, p); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := a.del(t, p); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	harness.WaitRoute(t, b.NetNS, a.podCIDR.String(), true, time.Second)
}
