package harness

import (
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BGP test timings: a session between two nodes of one segment comes up in 1-2 s with the configs'
// 1 s connect retry, and routes follow at once.
const (
	bgpHold         = 3 * time.Second
	bgpSessionWait  = 15 * time.Second
	bgpRouteWait    = 10 * time.Second
	bgpMD5DownCheck = 5 * time.Second
	// bgpBIRDCloseDelay is how long BIRD takes, after its hold timer expired, to drop the routes.
	bgpBIRDCloseDelay = 3 * time.Second
)

var (
	birdPrefix  = netip.MustParsePrefix("10.245.1.0/24")
	frrPrefix   = netip.MustParsePrefix("10.245.2.0/24")
	gobgpPrefix = netip.MustParsePrefix("10.245.3.0/24")
)

func TestBGPConfigValidate(t *testing.T) {
	rid := netip.MustParseAddr("10.0.0.1")
	nbr := netip.MustParseAddr("10.0.0.2")
	for _, tc := range []struct {
		name string
		spec BGPSpec
		want string // "" for valid
	}{
		{"valid", BGPSpec{RouterID: rid, ASN: 65001, Neighbors: []BGPNeighbor{{Address: nbr, ASN: 65002}}}, ""},
		{"no router id", BGPSpec{ASN: 65001}, "router ID"},
		{"ipv6 router id", BGPSpec{RouterID: netip.MustParseAddr("fd00::1"), ASN: 65001}, "router ID"},
		{"no asn", BGPSpec{RouterID: rid}, "ASN"},
		{"neighbor without address", BGPSpec{RouterID: rid, ASN: 1, Neighbors: []BGPNeighbor{{ASN: 2}}}, "no address"},
		{"neighbor without asn", BGPSpec{RouterID: rid, ASN: 1, Neighbors: []BGPNeighbor{{Address: nbr}}}, "ASN"},
		{"short hold", BGPSpec{RouterID: rid, ASN: 1, Neighbors: []BGPNeighbor{{Address: nbr, ASN: 2, HoldTime: time.Second}}}, "hold time"},
		{"fractional hold", BGPSpec{RouterID: rid, ASN: 1, Neighbors: []BGPNeighbor{{Address: nbr, ASN: 2, HoldTime: 3500 * time.Millisecond}}}, "whole seconds"},
		{"ebgp rr client", BGPSpec{RouterID: rid, ASN: 1, Neighbors: []BGPNeighbor{{Address: nbr, ASN: 2, RRClient: true}}}, "route-reflector client"},
		{"bad multihop", BGPSpec{RouterID: rid, ASN: 1, Neighbors: []BGPNeighbor{{Address: nbr, ASN: 2, Multihop: 256}}}, "multihop"},
		{"password quote", BGPSpec{RouterID: rid, ASN: 1, Neighbors: []BGPNeighbor{{Address: nbr, ASN: 2, Password: `a"b`}}}, "password"},
		{"host bits", BGPSpec{RouterID: rid, ASN: 1, Originate: []netip.Prefix{netip.MustParsePrefix("10.1.1.1/24")}}, "host bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, render := range map[string]func(BGPSpec) (string, error){"bird": BIRDConfig, "frr": FRRConfig, "gobgp": GoBGPConfig} {
				_, err := render(tc.spec)
				switch {
				case tc.want == "" && err != nil:
					t.Errorf("%s: %v", name, err)
				case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
					t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
				}
			}
		})
	}
}

func TestBGPConfigRender(t *testing.T) {
	spec := BGPSpec{
		RouterID: netip.MustParseAddr("10.77.1.11"),
		ASN:      65001,
		Neighbors: []BGPNeighbor{
			{Address: netip.MustParseAddr("10.77.1.12"), ASN: 65002, Password: "s3cret", HoldTime: 6 * time.Second, Multihop: 2},
			{Address: netip.MustParseAddr("fd77:1::13"), ASN: 65001, RRClient: true, Passive: true},
		},
		Originate:      []netip.Prefix{birdPrefix, netip.MustParsePrefix("fd45:1::/64")},
		ExportToKernel: true,
	}
	bird, err := BIRDConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	frr, err := FRRConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Originate, spec.ExportToKernel = nil, false
	gobgp, err := GoBGPConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"bird", bird, []string{
			"router id 10.77.1.11;",
			"route 10.245.1.0/24 blackhole;",
			"route fd45:1::/64 blackhole;",
			"export where source = RTS_BGP;",
			"protocol bgp peer0 {\n  local as 65001;\n  neighbor 10.77.1.12 as 65002;\n  hold time 6;\n  keepalive time 2;",
			`password "s3cret";`,
			"multihop 2;",
			"protocol bgp peer1 {\n  local as 65001;\n  neighbor fd77:1::13 as 65001;\n  hold time 9;\n  keepalive time 3;",
			"passive on;",
			"rr client;",
			"  ipv6 {\n    import all;\n    export all;\n  };",
		}},
		{"frr", frr, []string{
			"router bgp 65001\n bgp router-id 10.77.1.11\n no bgp ebgp-requires-policy\n no bgp network import-check",
			" neighbor 10.77.1.12 remote-as 65002\n neighbor 10.77.1.12 timers 2 6\n neighbor 10.77.1.12 timers connect 1\n",
			" neighbor 10.77.1.12 password s3cret\n",
			" neighbor 10.77.1.12 ebgp-multihop 2\n",
			" neighbor fd77:1::13 passive\n",
			" address-family ipv4 unicast\n  neighbor 10.77.1.12 activate\n  network 10.245.1.0/24\n exit-address-family\n",
			" address-family ipv6 unicast\n  neighbor fd77:1::13 activate\n  neighbor fd77:1::13 route-reflector-client\n  network fd45:1::/64\n exit-address-family\n",
		}},
		{"gobgp", gobgp, []string{
			"[global.config]\n  as = 65001\n  router-id = \"10.77.1.11\"\n",
			"neighbor-address = \"10.77.1.12\"\n    peer-as = 65002\n    auth-password = \"s3cret\"\n",
			"hold-time = 6\n    keepalive-interval = 2\n    connect-retry = 1\n",
			"multihop-ttl = 2",
			"passive-mode = true",
			"route-reflector-client = true\n    route-reflector-cluster-id = \"10.77.1.11\"",
			"afi-safi-name = \"ipv6-unicast\"",
		}},
	} {
		for _, w := range tc.want {
			if !strings.Contains(tc.config, w) {
				t.Errorf("%s config lacks %q:\n%s", tc.name, w, tc.config)
			}
		}
	}
	if strings.Contains(frr, "table-map") {
		t.Errorf("frr config with ExportToKernel has a table-map:\n%s", frr)
	}
	spec.ExportToKernel = false
	frrNoFIB, err := FRRConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(frrNoFIB, "table-map NETLOOM-NO-FIB") {
		t.Errorf("frr config without ExportToKernel keeps routes in the FIB:\n%s", frrNoFIB)
	}
	for _, s := range []BGPSpec{{RouterID: spec.RouterID, ASN: 1, Originate: []netip.Prefix{birdPrefix}}, {RouterID: spec.RouterID, ASN: 1, ExportToKernel: true}} {
		if _, err := GoBGPConfig(s); err == nil {
			t.Errorf("GoBGPConfig(%+v) accepted what gobgpd cannot do", s)
		}
	}
}

func TestBGPSessionStateParsers(t *testing.T) {
	nbr := netip.MustParseAddr("10.77.1.12")
	bird := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     15:34:10.413
peer0      BGP        ---        up     15:34:12.001  Established
  BGP state:          Established
    Neighbor address: 10.77.1.12
    Neighbor AS:      65002

peer1      BGP        ---        start  15:34:10.413  Active
  BGP state:          Active
    Neighbor address: 10.77.1.13
`
	if ok, desc := birdSessionState(bird, nbr); !ok {
		t.Errorf("bird, 10.77.1.12: not established: %s", desc)
	}
	if ok, desc := birdSessionState(bird, netip.MustParseAddr("10.77.1.13")); ok || !strings.Contains(desc, "Active") {
		t.Errorf("bird, 10.77.1.13: %v %s, want not established, Active", ok, desc)
	}
	if ok, _ := birdSessionState(bird, netip.MustParseAddr("10.77.1.99")); ok {
		t.Error("bird: unknown neighbor established")
	}
	if ok, desc := frrSessionState(`{"10.77.1.12":{"remoteAs":65001,"bgpState":"Established"}}`, nbr); !ok {
		t.Errorf("frr: %s", desc)
	}
	if ok, _ := frrSessionState(`{"10.77.1.12":{"bgpState":"Active"}}`, nbr); ok {
		t.Error("frr: Active read as established")
	}
	if ok, desc := gobgpSessionState("BGP neighbor is 10.77.1.11, remote AS 65001\n  BGP version 4, remote router ID 10.77.1.11\n  BGP state = ESTABLISHED, up for 00:00:05\n"); !ok {
		t.Errorf("gobgp: %s", desc)
	}
	if ok, _ := gobgpSessionState("  BGP state = ACTIVE\n"); ok {
		t.Error("gobgp: ACTIVE read as established")
	}
}

// checkDaemonsGone registers, before the cluster exists, a cleanup that runs after everything else
// of t: the daemons' processes are gone, their directories removed, and so are the nodes'
// namespaces.
func checkDaemonsGone(t *testing.T, daemons *[]*Daemon, c **Cluster) {
	t.Cleanup(func() {
		for _, d := range *daemons {
			for _, p := range d.procs {
				if p.pid == 0 {
					continue
				}
				// A reaped PID that the kernel gave to another process would be a false alarm; a
				// daemon still running is what matters: its /proc entry names the daemon.
				if comm, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/comm"); err == nil && strings.TrimSpace(string(comm)) == p.name {
					t.Errorf("%s (pid %d) still runs after the test", p.name, p.pid)
				}
			}
			if _, err := os.Stat(d.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s directory %s left behind (%v)", d.Kind, d.Dir, err)
			}
		}
		if *c == nil {
			return
		}
		for _, n := range append([]*Node{}, (*c).Nodes...) {
			if _, err := os.Stat(n.Path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("namespace %s left behind", n.Name)
			}
		}
	})
}

// birdFRRSpecs returns the specs of an eBGP pair: BIRD on a (AS 65001), FRR on b (AS 65002), each
// originating its /24 and installing what it learns.
func birdFRRSpecs(a, b *Node, birdPassword, frrPassword string) (BGPSpec, BGPSpec) {
	bird := BGPSpec{
		RouterID:       a.Addr.Addr(),
		ASN:            65001,
		Neighbors:      []BGPNeighbor{{Address: b.Addr.Addr(), ASN: 65002, HoldTime: bgpHold, Password: birdPassword}},
		Originate:      []netip.Prefix{birdPrefix},
		ExportToKernel: true,
	}
	frr := BGPSpec{
		RouterID:       b.Addr.Addr(),
		ASN:            65002,
		Neighbors:      []BGPNeighbor{{Address: a.Addr.Addr(), ASN: 65001, HoldTime: bgpHold, Password: frrPassword}},
		Originate:      []netip.Prefix{frrPrefix},
		ExportToKernel: true,
	}
	return bird, frr
}

func mustConfig(t *testing.T, render func(BGPSpec) (string, error), s BGPSpec) string {
	t.Helper()
	cfg, err := render(s)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestBGPBirdFRR peers BIRD and FRR over eBGP and follows their routes into the nodes' kernels
// through a graceful stop, a restart and a crash of FRR.
func TestBGPBirdFRR(t *testing.T) {
	RequireRoot(t)
	var daemons []*Daemon
	var c *Cluster
	checkDaemonsGone(t, &daemons, &c)
	c = NewCluster(t, ClusterSpec{Local: 2})
	a, b := c.Nodes[0], c.Nodes[1]
	birdSpec, frrSpec := birdFRRSpecs(a, b, "", "")

	start := time.Now()
	bird := StartBIRD(t, a.NetNS, mustConfig(t, BIRDConfig, birdSpec))
	frr := StartFRR(t, b.NetNS, mustConfig(t, FRRConfig, frrSpec))
	daemons = append(daemons, bird, frr)
	t.Logf("daemons started in %v", time.Since(start).Round(time.Millisecond))

	bird.WaitSessionUp(t, b.Addr.Addr(), bgpSessionWait)
	frr.WaitSessionUp(t, a.Addr.Addr(), bgpSessionWait)
	t.Logf("session established %v after the start", time.Since(start).Round(time.Millisecond))

	routeStart := time.Now()
	onA := WaitRoute(t, a.NetNS, frrPrefix.String(), true, bgpRouteWait)
	onB := WaitRoute(t, b.NetNS, birdPrefix.String(), true, bgpRouteWait)
	t.Logf("routes in both kernels %v after the session check (node 0: %q, node 1: %q)", time.Since(routeStart).Round(time.Millisecond), onA, onB)
	if !strings.Contains(onA, "via "+b.Addr.Addr().String()) || !strings.Contains(onA, "proto bird") {
		t.Errorf("node 0's route to %s: %q, want via %s, proto bird", frrPrefix, onA, b.Addr.Addr())
	}
	if !strings.Contains(onB, "via "+a.Addr.Addr().String()) || !strings.Contains(onB, "proto bgp") {
		t.Errorf("node 1's route to %s: %q, want via %s, proto bgp", birdPrefix, onB, a.Addr.Addr())
	}
	// The originating node keeps its own prefix out of its kernel: BIRD's static blackhole is not
	// exported, FRR's network statement installs nothing.
	if out := a.Run(t, "ip", "-4", "route", "show", birdPrefix.String()); strings.TrimSpace(out) != "" {
		t.Errorf("node 0 installed its own prefix: %q", out)
	}
	if out := bird.BirdC(t, "show", "route", "for", frrPrefix.Addr().String()); !strings.Contains(out, frrPrefix.String()) {
		t.Errorf("birdc show route: %s", out)
	}
	if out := frr.Vtysh(t, "show ip bgp "+birdPrefix.String()); !strings.Contains(out, a.Addr.Addr().String()) {
		t.Errorf("vtysh show ip bgp: %s", out)
	}

	// A graceful stop: bgpd closes the session with a Cease, BIRD withdraws at once; zebra removes
	// its kernel routes.
	stopAt := time.Now()
	frr.Stop(t)
	WaitRoute(t, a.NetNS, frrPrefix.String(), false, bgpHold+2*time.Second)
	t.Logf("route withdrawn from node 0 %v after FRR's stop", time.Since(stopAt).Round(time.Millisecond))
	if out := b.Run(t, "ip", "-4", "route", "show", "proto", "bgp"); strings.TrimSpace(out) != "" {
		t.Errorf("node 1 keeps bgp routes after zebra stopped: %q", out)
	}

	restartAt := time.Now()
	frr.Restart(t)
	bird.WaitSessionUp(t, b.Addr.Addr(), bgpSessionWait)
	WaitRoute(t, a.NetNS, frrPrefix.String(), true, bgpRouteWait)
	t.Logf("session and route back %v after FRR's restart", time.Since(restartAt).Round(time.Millisecond))

	// A hang: the connection stays open, BIRD withdraws when its hold time runs out. BIRD then
	// spends up to 3 s more in its Close state (sending its Notification) before the session is
	// down and the routes go.
	pauseAt := time.Now()
	frr.Pause(t)
	WaitRoute(t, a.NetNS, frrPrefix.String(), false, bgpHold+bgpBIRDCloseDelay+2*time.Second)
	held := time.Since(pauseAt)
	t.Logf("route withdrawn from node 0 %v after FRR froze (hold time %v)", held.Round(time.Millisecond), bgpHold)
	if held < bgpHold-time.Second {
		t.Errorf("route withdrawn %v after FRR froze, before the hold time %v could run out", held, bgpHold)
	}
	frr.Resume(t)
	bird.WaitSessionUp(t, b.Addr.Addr(), bgpSessionWait)
	WaitRoute(t, a.NetNS, frrPrefix.String(), true, bgpRouteWait)
	t.Logf("session and route back %v after FRR resumed", time.Since(pauseAt.Add(held)).Round(time.Millisecond))

	// A crash: no Cease, but the kernel still closes bgpd's TCP connection, so BIRD sees the session
	// end at once (with graceful restart off it does not keep the routes as stale).
	crashAt := time.Now()
	frr.Kill(t)
	WaitRoute(t, a.NetNS, frrPrefix.String(), false, bgpHold+3*time.Second)
	t.Logf("route withdrawn from node 0 %v after FRR's crash", time.Since(crashAt).Round(time.Millisecond))
	if ok, desc := bird.SessionEstablished(t, b.Addr.Addr()); ok {
		t.Errorf("BIRD's session still established after FRR's crash: %s", desc)
	}
}

// TestBGPGoBGPWithBIRD peers a stock gobgpd with BIRD: each learns the other's prefix, and BIRD puts
// gobgpd's in its node's kernel.
func TestBGPGoBGPWithBIRD(t *testing.T) {
	RequireRoot(t)
	var daemons []*Daemon
	var c *Cluster
	checkDaemonsGone(t, &daemons, &c)
	c = NewCluster(t, ClusterSpec{Local: 3})
	a, g := c.Nodes[0], c.Nodes[2]
	birdSpec := BGPSpec{
		RouterID:       a.Addr.Addr(),
		ASN:            65001,
		Neighbors:      []BGPNeighbor{{Address: g.Addr.Addr(), ASN: 65003, HoldTime: bgpHold}},
		Originate:      []netip.Prefix{birdPrefix},
		ExportToKernel: true,
	}
	goSpec := BGPSpec{
		RouterID:  g.Addr.Addr(),
		ASN:       65003,
		Neighbors: []BGPNeighbor{{Address: a.Addr.Addr(), ASN: 65001, HoldTime: bgpHold}},
	}
	start := time.Now()
	bird := StartBIRD(t, a.NetNS, mustConfig(t, BIRDConfig, birdSpec))
	gobgpd := StartGoBGPD(t, g.NetNS, mustConfig(t, GoBGPConfig, goSpec), "")
	daemons = append(daemons, bird, gobgpd)
	gobgpd.WaitSessionUp(t, a.Addr.Addr(), bgpSessionWait)
	bird.WaitSessionUp(t, g.Addr.Addr(), bgpSessionWait)
	t.Logf("session established %v after the start", time.Since(start).Round(time.Millisecond))

	rib := WaitUntil(t, bgpRouteWait, "gobgp global rib has "+birdPrefix.String(), func() (bool, string) {
		out := gobgpd.GoBGP(t, "global", "rib", "-a", "ipv4")
		return strings.Contains(out, birdPrefix.String()), out
	})
	if !strings.Contains(rib, a.Addr.Addr().String()) {
		t.Errorf("gobgp global rib: next hop of %s is not %s:\n%s", birdPrefix, a.Addr.Addr(), rib)
	}

	gobgpd.GoBGP(t, "global", "rib", "add", "-a", "ipv4", gobgpPrefix.String())
	route := WaitRoute(t, a.NetNS, gobgpPrefix.String(), true, bgpRouteWait)
	if !strings.Contains(route, "via "+g.Addr.Addr().String()) {
		t.Errorf("node 0's route to gobgpd's %s: %q, want via %s", gobgpPrefix, route, g.Addr.Addr())
	}
	gobgpd.GoBGP(t, "global", "rib", "del", "-a", "ipv4", gobgpPrefix.String())
	WaitRoute(t, a.NetNS, gobgpPrefix.String(), false, bgpRouteWait)
}

// TestBGPMD5 shows that TCP MD5 signatures are in force: BIRD and FRR with different passwords never
// establish, with the same password they do.
func TestBGPMD5(t *testing.T) {
	RequireRoot(t)
	var daemons []*Daemon
	var c *Cluster
	checkDaemonsGone(t, &daemons, &c)
	c = NewCluster(t, ClusterSpec{Local: 2})
	a, b := c.Nodes[0], c.Nodes[1]

	birdSpec, frrSpec := birdFRRSpecs(a, b, "alpha", "bravo")
	bird := StartBIRD(t, a.NetNS, mustConfig(t, BIRDConfig, birdSpec))
	frr := StartFRR(t, b.NetNS, mustConfig(t, FRRConfig, frrSpec))
	daemons = append(daemons, bird, frr)
	for end := time.Now().Add(bgpMD5DownCheck); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if ok, desc := bird.SessionEstablished(t, b.Addr.Addr()); ok {
			t.Fatalf("session established with mismatched MD5 passwords: %s", desc)
		}
	}
	frr.Stop(t)

	_, frrSpec = birdFRRSpecs(a, b, "alpha", "alpha")
	frr = StartFRR(t, b.NetNS, mustConfig(t, FRRConfig, frrSpec))
	daemons = append(daemons, frr)
	up := bird.WaitSessionUp(t, b.Addr.Addr(), bgpSessionWait)
	WaitRoute(t, a.NetNS, frrPrefix.String(), true, bgpRouteWait)
	t.Logf("with the same password: session established %v after FRR's start", up.Round(time.Millisecond))
}

// TestBGPIPv6 peers BIRD and FRR over the nodes' IPv6 addresses and exchanges IPv6 prefixes.
func TestBGPIPv6(t *testing.T) {
	RequireRoot(t)
	var daemons []*Daemon
	var c *Cluster
	checkDaemonsGone(t, &daemons, &c)
	c = NewCluster(t, ClusterSpec{Local: 2})
	a, b := c.Nodes[0], c.Nodes[1]
	birdV6, frrV6 := netip.MustParsePrefix("fd45:1::/64"), netip.MustParsePrefix("fd45:2::/64")
	birdSpec := BGPSpec{
		RouterID:       a.Addr.Addr(),
		ASN:            65001,
		Neighbors:      []BGPNeighbor{{Address: b.Addr6.Addr(), ASN: 65002, HoldTime: bgpHold}},
		Originate:      []netip.Prefix{birdV6},
		ExportToKernel: true,
	}
	frrSpec := BGPSpec{
		RouterID:       b.Addr.Addr(),
		ASN:            65002,
		Neighbors:      []BGPNeighbor{{Address: a.Addr6.Addr(), ASN: 65001, HoldTime: bgpHold}},
		Originate:      []netip.Prefix{frrV6},
		ExportToKernel: true,
	}
	start := time.Now()
	bird := StartBIRD(t, a.NetNS, mustConfig(t, BIRDConfig, birdSpec))
	frr := StartFRR(t, b.NetNS, mustConfig(t, FRRConfig, frrSpec))
	daemons = append(daemons, bird, frr)
	bird.WaitSessionUp(t, b.Addr6.Addr(), bgpSessionWait)
	frr.WaitSessionUp(t, a.Addr6.Addr(), bgpSessionWait)
	onA := WaitRoute(t, a.NetNS, frrV6.String(), true, bgpRouteWait)
	onB := WaitRoute(t, b.NetNS, birdV6.String(), true, bgpRouteWait)
	t.Logf("session and routes %v after the start (node 0: %q, node 1: %q)", time.Since(start).Round(time.Millisecond), onA, onB)
	if !strings.Contains(onA, "dev eth0") || !strings.Contains(onB, "dev eth0") {
		t.Errorf("IPv6 routes not through eth0: node 0 %q, node 1 %q", onA, onB)
	}
}
