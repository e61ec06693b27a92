package harness

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BGPPackages are the Debian packages that provide the BGP daemons the harness runs: BIRD 2 (bird,
// birdc), FRR (zebra, bgpd, vtysh) and GoBGP (gobgpd, gobgp). Install them with
// `apt-get install -y --no-install-recommends bird2 frr gobgpd`; their services must not run in the
// host namespace (the harness starts its own daemons inside the nodes).
const BGPPackages = "bird2 frr gobgpd"

// Where the daemons live and how long the harness waits for them.
const (
	birdBinary   = "bird"
	birdcBinary  = "birdc"
	frrDir       = "/usr/lib/frr" // zebra and bgpd are not on PATH
	frrUser      = "frr"          // FRR drops privileges to this user, which must reach its files
	vtyshBinary  = "vtysh"
	gobgpdBinary = "gobgpd"
	gobgpBinary  = "gobgp"

	// DefaultGoBGPAPI is where StartGoBGPD's gRPC API listens when the caller names no address: the
	// node's own loopback, so every node can use the same port.
	DefaultGoBGPAPI = "127.0.0.1:50051"

	// DefaultHoldTime is the hold time of a BGPNeighbor that sets none: short, so a test sees a dead
	// peer's routes withdrawn within seconds (BIRD accepts 3 s at least, RFC 4271 too).
	DefaultHoldTime = 9 * time.Second
	minHoldTime     = 3 * time.Second

	daemonReadyTimeout = 10 * time.Second // from start until the control socket or API answers
	daemonStopTimeout  = 5 * time.Second  // from SIGTERM until SIGKILL
	bgpControlTimeout  = 10 * time.Second // one birdc, vtysh or gobgp command
	bgpPollInterval    = 100 * time.Millisecond
	bgpLogTailLines    = 40

	// maxSocketPath is the room for a unix socket's path (sun_path is 108 bytes with the NUL): the
	// daemons' private directories are made short, directly under the temp dir, for it.
	maxSocketPath = 107
)

// BGPSpec describes one BGP speaker for BIRDConfig, FRRConfig and GoBGPConfig, so one test can set up
// the same speaker with any of the three daemons.
type BGPSpec struct {
	RouterID  netip.Addr // required, IPv4
	ASN       uint32     // required
	Neighbors []BGPNeighbor
	// Originate are prefixes the speaker announces to every neighbor of the prefix's family. BIRD
	// announces them from static blackhole routes (which it keeps out of the kernel), FRR from
	// `network` statements without import check. GoBGPConfig rejects them: gobgpd's config file
	// cannot originate routes; add them with `d.GoBGP(t, "global", "rib", "add", "-a", "ipv4", P)`.
	Originate []netip.Prefix
	// ExportToKernel installs the routes learned over BGP in the node's main routing table (BIRD's
	// kernel protocols, FRR's zebra). Stock gobgpd has no FIB: GoBGPConfig rejects it.
	ExportToKernel bool
	// ClusterID is the route reflector's cluster ID when some neighbor is an RRClient; unset, the
	// daemons use the router ID.
	ClusterID netip.Addr
	// GracefulRestart advertises and honours the graceful-restart capability (RFC 4724). Off by
	// default, unlike BIRD's and FRR's own defaults: with it, a speaker whose peer's connection drops
	// without a Cease (a crash, or FRR's bgpd on SIGTERM) keeps the peer's routes as stale for the
	// restart time (120 s), which a test of withdrawal would wait out.
	GracefulRestart bool
}

// BGPNeighbor is one BGP session of a BGPSpec. The session carries the address family of Address
// only (an IPv4 session IPv4 unicast routes, an IPv6 session IPv6 unicast routes).
type BGPNeighbor struct {
	Address  netip.Addr // required
	ASN      uint32     // required; equal to the speaker's ASN for iBGP
	Password string     // TCP MD5 signature (RFC 2385) when not empty
	// HoldTime is the proposed hold time, 0 for DefaultHoldTime; at least 3 s. The keepalive
	// interval is a third of it.
	HoldTime time.Duration
	RRClient bool // the neighbor is a route-reflector client (iBGP only)
	Passive  bool // never connect, only accept the neighbor's connection
	Multihop int  // eBGP multihop TTL; 0 for a directly connected neighbor
}

func (s BGPSpec) validate() error {
	if !s.RouterID.Is4() {
		return fmt.Errorf("bgp spec: router ID %v: must be an IPv4 address", s.RouterID)
	}
	if s.ASN == 0 {
		return fmt.Errorf("bgp spec: ASN must not be 0")
	}
	for i, n := range s.Neighbors {
		switch {
		case !n.Address.IsValid():
			return fmt.Errorf("bgp spec: neighbor %d: no address", i)
		case n.ASN == 0:
			return fmt.Errorf("bgp spec: neighbor %v: ASN must not be 0", n.Address)
		case n.HoldTime != 0 && n.HoldTime < minHoldTime:
			return fmt.Errorf("bgp spec: neighbor %v: hold time %v: must be 0 (default) or at least %v", n.Address, n.HoldTime, minHoldTime)
		case n.HoldTime%time.Second != 0:
			return fmt.Errorf("bgp spec: neighbor %v: hold time %v: must be whole seconds", n.Address, n.HoldTime)
		case n.RRClient && n.ASN != s.ASN:
			return fmt.Errorf("bgp spec: neighbor %v: a route-reflector client must be iBGP (AS %d), not AS %d", n.Address, s.ASN, n.ASN)
		case n.Multihop < 0 || n.Multihop > 255:
			return fmt.Errorf("bgp spec: neighbor %v: multihop %d: must be 0..255", n.Address, n.Multihop)
		case strings.ContainsAny(n.Password, "\"\\ \t\n"):
			return fmt.Errorf("bgp spec: neighbor %v: password must not contain quotes, backslashes or white space", n.Address)
		}
	}
	for _, p := range s.Originate {
		if !p.IsValid() || p != p.Masked() {
			return fmt.Errorf("bgp spec: originate %v: must be a valid prefix without host bits", p)
		}
	}
	return nil
}

// holdAndKeepalive returns n's hold time and keepalive interval in seconds.
func (n BGPNeighbor) holdAndKeepalive() (hold, keepalive int) {
	h := n.HoldTime
	if h == 0 {
		h = DefaultHoldTime
	}
	hold = int(h / time.Second)
	return hold, max(hold/3, 1)
}

// bgpFamily returns "ipv4" or "ipv6" for a.
func bgpFamily(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// BIRDConfig renders s as a BIRD 2 configuration: a device protocol, a static protocol per family
// with a blackhole route for each originated prefix, kernel protocols per family (when
// ExportToKernel) that export only the BGP-learned routes to the main table, and one bgp protocol per
// neighbor (named peerN, N its index in s.Neighbors) that imports and exports everything, with short
// timers (first connect after 1 s instead of 5, retries every second). Logs go to stderr, which StartBIRD writes to the daemon's log file.
func BIRDConfig(s BGPSpec) (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	gr := map[bool]string{true: "on", false: "off"}[s.GracefulRestart]
	fmt.Fprintf(&b, "log stderr all;\nrouter id %s;\n\n", s.RouterID)
	b.WriteString("protocol device {\n  scan time 10;\n}\n")
	for _, fam := range []string{"ipv4", "ipv6"} {
		var routes []netip.Prefix
		for _, p := range s.Originate {
			if bgpFamily(p.Addr()) == fam {
				routes = append(routes, p)
			}
		}
		if len(routes) > 0 {
			fmt.Fprintf(&b, "\nprotocol static originate_%s {\n  %s;\n", fam, fam)
			for _, p := range routes {
				fmt.Fprintf(&b, "  route %s blackhole;\n", p)
			}
			b.WriteString("}\n")
		}
		if s.ExportToKernel {
			// Only what BGP learned: the static blackholes stand for the originated prefixes and must
			// not swallow the node's own traffic to them.
			fmt.Fprintf(&b, "\nprotocol kernel kernel_%s {\n  %s {\n    import none;\n    export where source = RTS_BGP;\n  };\n}\n", fam, fam)
		}
	}
	for i, n := range s.Neighbors {
		hold, keepalive := n.holdAndKeepalive()
		fmt.Fprintf(&b, "\nprotocol bgp peer%d {\n", i)
		fmt.Fprintf(&b, "  local as %d;\n  neighbor %s as %d;\n", s.ASN, n.Address, n.ASN)
		fmt.Fprintf(&b, "  hold time %d;\n  keepalive time %d;\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 5;\n  graceful restart %s;\n", hold, keepalive, gr)
		if n.Password != "" {
			fmt.Fprintf(&b, "  password %q;\n", n.Password)
		}
		if n.Passive {
			b.WriteString("  passive on;\n")
		}
		if n.Multihop > 0 {
			fmt.Fprintf(&b, "  multihop %d;\n", n.Multihop)
		}
		if n.RRClient {
			b.WriteString("  rr client;\n")
			if s.ClusterID.IsValid() {
				fmt.Fprintf(&b, "  rr cluster id %s;\n", s.ClusterID)
			}
		}
		fmt.Fprintf(&b, "  %s {\n    import all;\n    export all;\n  };\n}\n", bgpFamily(n.Address))
	}
	return b.String(), nil
}

// FRRConfig renders s as FRR's bgpd configuration: `router bgp`, one `neighbor` block per neighbor
// with its timers (connect retry 1 s), password, passive and multihop settings, `no bgp
// ebgp-requires-policy` (FRR otherwise sends and accepts nothing over eBGP), `no bgp network
// import-check` (the originated prefixes need no route in the RIB) and one address family per
// family in use. Without ExportToKernel a table-map keeps every BGP route out of zebra's FIB.
func FRRConfig(s BGPSpec) (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("frr defaults traditional\n!\n")
	if !s.ExportToKernel {
		b.WriteString("route-map NETLOOM-NO-FIB deny 10\n!\n")
	}
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp network import-check\n no bgp default ipv4-unicast\n", s.ASN, s.RouterID)
	if s.ClusterID.IsValid() {
		fmt.Fprintf(&b, " bgp cluster-id %s\n", s.ClusterID)
	}
	if s.GracefulRestart {
		b.WriteString(" bgp graceful-restart\n")
	} else {
		b.WriteString(" bgp graceful-restart-disable\n")
	}
	for _, n := range s.Neighbors {
		hold, keepalive := n.holdAndKeepalive()
		a := n.Address.String()
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s timers %d %d\n neighbor %s timers connect 1\n", a, n.ASN, a, keepalive, hold, a)
		if n.Password != "" {
			fmt.Fprintf(&b, " neighbor %s password %s\n", a, n.Password)
		}
		if n.Passive {
			fmt.Fprintf(&b, " neighbor %s passive\n", a)
		}
		if n.Multihop > 0 {
			fmt.Fprintf(&b, " neighbor %s ebgp-multihop %d\n", a, n.Multihop)
		}
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		var body strings.Builder
		for _, n := range s.Neighbors {
			if bgpFamily(n.Address) != fam {
				continue
			}
			fmt.Fprintf(&body, "  neighbor %s activate\n", n.Address)
			if n.RRClient {
				fmt.Fprintf(&body, "  neighbor %s route-reflector-client\n", n.Address)
			}
		}
		for _, p := range s.Originate {
			if bgpFamily(p.Addr()) == fam {
				fmt.Fprintf(&body, "  network %s\n", p)
			}
		}
		if body.Len() == 0 {
			continue
		}
		if !s.ExportToKernel {
			body.WriteString("  table-map NETLOOM-NO-FIB\n")
		}
		fmt.Fprintf(&b, " !\n address-family %s unicast\n%s exit-address-family\n", fam, body.String())
	}
	b.WriteString("exit\n!\n")
	return b.String(), nil
}

// GoBGPConfig renders s as gobgpd's TOML configuration: the global AS and router ID, one
// [[neighbors]] block per neighbor with its timers (connect retry 1 s), password, passive, multihop
// and route-reflector settings, and the neighbor's address family. gobgpd's default policy accepts
// and announces everything. Originate and ExportToKernel are errors: gobgpd's config cannot say them.
func GoBGPConfig(s BGPSpec) (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	if len(s.Originate) > 0 {
		return "", errors.New(`bgp spec: gobgpd cannot originate prefixes from its config: add them once it runs, with d.GoBGP(t, "global", "rib", "add", "-a", "ipv4", prefix)`)
	}
	if s.ExportToKernel {
		return "", errors.New("bgp spec: stock gobgpd cannot install routes in the kernel (it has no FIB without zebra)")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[global.config]\n  as = %d\n  router-id = %q\n", s.ASN, s.RouterID.String())
	for _, n := range s.Neighbors {
		hold, keepalive := n.holdAndKeepalive()
		fmt.Fprintf(&b, "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = %q\n    peer-as = %d\n", n.Address.String(), n.ASN)
		if n.Password != "" {
			fmt.Fprintf(&b, "    auth-password = %q\n", n.Password)
		}
		fmt.Fprintf(&b, "  [neighbors.timers.config]\n    hold-time = %d\n    keepalive-interval = %d\n    connect-retry = 1\n", hold, keepalive)
		if n.Passive {
			b.WriteString("  [neighbors.transport.config]\n    passive-mode = true\n")
		}
		if n.Multihop > 0 {
			fmt.Fprintf(&b, "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = %d\n", n.Multihop)
		}
		if n.RRClient {
			cluster := s.ClusterID
			if !cluster.IsValid() {
				cluster = s.RouterID
			}
			fmt.Fprintf(&b, "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = %q\n", cluster.String())
		}
		if s.GracefulRestart {
			b.WriteString("  [neighbors.graceful-restart.config]\n    enabled = true\n")
		}
		fmt.Fprintf(&b, "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"%s-unicast\"\n", bgpFamily(n.Address))
		if s.GracefulRestart {
			b.WriteString("    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n")
		}
	}
	return b.String(), nil
}

// Daemon is a BGP daemon the harness runs inside a node: BIRD (one process), FRR (zebra and bgpd) or
// gobgpd. Its files (config, control sockets, pid files, one log per process) are in Dir, private to
// it, so any number of daemons run at once. It is stopped, by PID, and Dir removed when the test
// ends; the tail of every log is printed first if the test failed.
//
// A running daemon keeps its node's namespace alive: stop it before Cluster.RestartNode.
type Daemon struct {
	Kind string // "bird", "frr" or "gobgpd"
	Node NetNS
	Dir  string

	procs   []*daemonProc // in start order; stopped in reverse
	sock    string        // BIRD's control socket
	apiAddr string        // gobgpd's gRPC API, host:port inside Node
}

// daemonProc is one process of a Daemon.
type daemonProc struct {
	name   string   // "bird", "zebra", "bgpd", "gobgpd"
	argv   []string // run inside the node by `ip netns exec`
	log    string   // stdout and stderr, appended over restarts
	ready  func() error
	pid    int
	exited chan struct{} // closed once the process has been reaped
	err    error         // its exit status, once exited is closed
}

// Logs returns the paths of the daemon's log files, one per process.
func (d *Daemon) Logs() []string {
	out := make([]string, 0, len(d.procs))
	for _, p := range d.procs {
		out = append(out, p.log)
	}
	return out
}

// StartBIRD runs `bird -f -c <Dir>/bird.conf -s <Dir>/bird.ctl -P <Dir>/bird.pid` inside node with
// config (BIRDConfig makes one) and returns once birdc can talk to it.
func StartBIRD(t testing.TB, node NetNS, config string) *Daemon {
	t.Helper()
	requireBinaries(t, "bird2", birdBinary, birdcBinary)
	d := newDaemon(t, "bird", node, false)
	cfg := d.writeFile(t, "bird.conf", config)
	d.sock = filepath.Join(d.Dir, "bird.ctl")
	d.add("bird", []string{birdBinary, "-f", "-c", cfg, "-s", d.sock, "-P", filepath.Join(d.Dir, "bird.pid")},
		func() error { _, err := d.birdc("show", "status"); return err })
	d.start(t)
	return d
}

// BirdC runs `birdc -s <socket> args...` and returns its output; a failure to reach BIRD fails t.
func (d *Daemon) BirdC(t testing.TB, args ...string) string {
	t.Helper()
	d.requireKind(t, "bird")
	out, err := d.birdc(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (d *Daemon) birdc(args ...string) (string, error) {
	// birdc exits 0 even when BIRD rejects the command; callers read the output.
	return d.control(append([]string{birdcBinary, "-s", d.sock}, args...)...)
}

// StartFRR runs FRR's zebra and then bgpd inside node with bgpdConfig (FRRConfig makes one) and
// returns once vtysh reaches both. Both run in the foreground as FRR's own user (it drops root; the
// Debian build refuses `-u root` because root is not in the frrvty group), with every path moved into
// Dir: `zebra -f <Dir>/zebra.conf -i <Dir>/zebra.pid -z <Dir>/zserv.api --vty_socket <Dir> -P 0
// --log stdout` and bgpd likewise, so nothing lands in /var/run/frr or /etc/frr.
func StartFRR(t testing.TB, node NetNS, bgpdConfig string) *Daemon {
	t.Helper()
	requireBinaries(t, "frr", filepath.Join(frrDir, "zebra"), filepath.Join(frrDir, "bgpd"), vtyshBinary)
	d := newDaemon(t, "frr", node, true)
	zserv := filepath.Join(d.Dir, "zserv.api")
	for _, name := range []string{"zebra", "bgpd"} {
		config := "frr defaults traditional\n"
		if name == "bgpd" {
			config = bgpdConfig
		}
		cfg := d.writeFile(t, name+".conf", config)
		// -P 0: no TCP vty; vtysh uses the unix socket in Dir.
		argv := []string{filepath.Join(frrDir, name), "-f", cfg, "-i", filepath.Join(d.Dir, name+".pid"),
			"-z", zserv, "--vty_socket", d.Dir, "-P", "0", "--log", "stdout"}
		d.add(name, argv, func() error { _, err := d.vtysh(name, "show version"); return err })
	}
	d.start(t)
	return d
}

// Vtysh runs `vtysh --vty_socket <Dir> -c cmd` (cmd may hold several lines) and returns its output.
// A command FRR rejects fails t.
func (d *Daemon) Vtysh(t testing.TB, cmd string) string {
	t.Helper()
	d.requireKind(t, "frr")
	out, err := d.vtysh("", cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vtysh runs cmd in every FRR daemon of d, or only in daemon when it is not empty.
func (d *Daemon) vtysh(daemon, cmd string) (string, error) {
	argv := []string{vtyshBinary, "--vty_socket", d.Dir}
	if daemon != "" {
		argv = append(argv, "-d", daemon)
	}
	return d.control(append(argv, "-c", cmd)...)
}

// StartGoBGPD runs `gobgpd -f <Dir>/gobgpd.toml -t toml --api-hosts apiAddr --pprof-disable -p`
// inside node with config (GoBGPConfig makes one) and returns once the gobgp CLI reaches its API.
// apiAddr is host:port inside the node; "" means DefaultGoBGPAPI.
func StartGoBGPD(t testing.TB, node NetNS, config string, apiAddr string) *Daemon {
	t.Helper()
	requireBinaries(t, "gobgpd", gobgpdBinary, gobgpBinary)
	if apiAddr == "" {
		apiAddr = DefaultGoBGPAPI
	}
	d := newDaemon(t, "gobgpd", node, false)
	d.apiAddr = apiAddr
	cfg := d.writeFile(t, "gobgpd.toml", config)
	d.add("gobgpd", []string{gobgpdBinary, "-f", cfg, "-t", "toml", "--api-hosts", apiAddr, "--pprof-disable", "-p"},
		func() error { _, err := d.gobgp("global"); return err })
	d.start(t)
	return d
}

// GoBGP runs the gobgp CLI against the daemon's API (`gobgp -u host -p port args...`) inside its node
// and returns the output; a failing command fails t.
func (d *Daemon) GoBGP(t testing.TB, args ...string) string {
	t.Helper()
	if d.Kind != "netloomd" {
		d.requireKind(t, "gobgpd")
	}
	out, err := d.gobgp(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (d *Daemon) gobgp(args ...string) (string, error) {
	if strings.HasPrefix(d.apiAddr, "unix://") { // netloomd serves the same API on a unix socket
		return d.control(append([]string{gobgpBinary, "--target", d.apiAddr}, args...)...)
	}
	ap, err := netip.ParseAddrPort(d.apiAddr)
	if err != nil {
		return "", fmt.Errorf("gobgpd API address %q: %w", d.apiAddr, err)
	}
	argv := []string{gobgpBinary, "-u", ap.Addr().String(), "-p", strconv.Itoa(int(ap.Port()))}
	return d.control(append(argv, args...)...)
}

// control runs a control command (birdc, vtysh, gobgp) inside the daemon's node.
func (d *Daemon) control(argv ...string) (string, error) {
	// timeout(1): a daemon that accepted the connection and hangs must not hang the test.
	out, err := d.Node.Exec(append([]string{"timeout", strconv.Itoa(int(bgpControlTimeout / time.Second))}, argv...)...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", d.Kind, err)
	}
	return out, nil
}

// SessionEstablished reports whether the daemon's BGP session with neighbor is Established, and a
// description of its state for messages.
func (d *Daemon) SessionEstablished(t testing.TB, neighbor netip.Addr) (bool, string) {
	t.Helper()
	switch d.Kind {
	case "bird":
		out, err := d.birdc("show", "protocols", "all")
		if err != nil {
			return false, err.Error()
		}
		return birdSessionState(out, neighbor)
	case "frr":
		out, err := d.vtysh("bgpd", fmt.Sprintf("show bgp neighbors %s json", neighbor))
		if err != nil {
			return false, err.Error()
		}
		return frrSessionState(out, neighbor)
	case "gobgpd", "netloomd":
		out, err := d.gobgp("neighbor", neighbor.String())
		if err != nil {
			return false, err.Error()
		}
		return gobgpSessionState(out)
	}
	t.Fatalf("daemon kind %q", d.Kind)
	return false, ""
}

// WaitSessionUp waits up to timeout for the session with neighbor to be Established and returns how
// long that took; it fails t with the session's last state otherwise.
func (d *Daemon) WaitSessionUp(t testing.TB, neighbor netip.Addr, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	WaitUntil(t, timeout, fmt.Sprintf("%s in %s: BGP session with %s established", d.Kind, d.Node.Name, neighbor), func() (bool, string) {
		return d.SessionEstablished(t, neighbor)
	})
	return time.Since(start)
}

// birdSessionState finds neighbor's bgp protocol in `birdc show protocols all` and reads its state.
func birdSessionState(out string, neighbor netip.Addr) (bool, string) {
	// Each protocol is a block: a header line at column 0, then indented details, among them
	// "BGP state:" and "Neighbor address:".
	var block []string
	check := func() (bool, string, bool) {
		var state string
		found := false
		for _, l := range block {
			f := strings.Fields(l)
			switch {
			case strings.HasPrefix(strings.TrimSpace(l), "BGP state:") && len(f) >= 3:
				state = f[2]
			case strings.HasPrefix(strings.TrimSpace(l), "Neighbor address:") && len(f) >= 3:
				a, err := netip.ParseAddr(f[2])
				found = err == nil && a == neighbor
			}
		}
		return state == "Established", "BIRD: " + strings.TrimSpace(block[0]) + " (BGP state " + state + ")", found
	}
	for _, l := range append(strings.Split(out, "\n"), "") {
		if l != "" && (l[0] == ' ' || l[0] == '\t') {
			block = append(block, l)
			continue
		}
		if len(block) > 0 {
			if ok, desc, found := check(); found {
				return ok, desc
			}
		}
		block = []string{l}
	}
	return false, fmt.Sprintf("BIRD has no bgp protocol with neighbor %s", neighbor)
}

// frrSessionState reads `show bgp neighbors X json`.
func frrSessionState(out string, neighbor netip.Addr) (bool, string) {
	var peers map[string]struct {
		BGPState string `json:"bgpState"`
	}
	if err := json.Unmarshal([]byte(out), &peers); err != nil {
		return false, fmt.Sprintf("FRR: unreadable neighbor state (%v): %s", err, out)
	}
	p, ok := peers[neighbor.String()]
	if !ok {
		return false, fmt.Sprintf("FRR has no neighbor %s: %s", neighbor, out)
	}
	return p.BGPState == "Established", "FRR: bgpState " + p.BGPState
}

// gobgpSessionState reads `gobgp neighbor X`, whose second line says "BGP state = ESTABLISHED, up
// for ...".
func gobgpSessionState(out string) (bool, string) {
	for _, l := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(l, "BGP state = "); ok {
			state, _, _ := strings.Cut(rest, ",")
			state = strings.TrimSpace(state)
			return strings.EqualFold(state, "established"), "gobgpd: BGP state " + state
		}
	}
	return false, "gobgpd: no BGP state in: " + out
}

// WaitUntil polls check every 100 ms until it reports true or timeout passes, then fails t with
// what and check's last description. It returns that description on success.
func WaitUntil(t testing.TB, timeout time.Duration, what string, check func() (bool, string)) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := check()
		if ok {
			return desc
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %s", what, timeout, desc)
		}
		time.Sleep(bgpPollInterval)
	}
}

// WaitRoute polls `ip route show <prefix>` (exact match, main table) in node until a route is there
// (present) or none is (!present), and returns the route's line (empty when absent). It fails t
// after timeout.
func WaitRoute(t testing.TB, node NetNS, prefix string, present bool, timeout time.Duration) string {
	t.Helper()
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		t.Fatalf("WaitRoute: %v", err)
	}
	fam := "-4"
	if !p.Addr().Is4() {
		fam = "-6"
	}
	want := map[bool]string{true: "present", false: "absent"}[present]
	return WaitUntil(t, timeout, fmt.Sprintf("route %s %s in %s", p, want, node.Name), func() (bool, string) {
		out, err := node.Exec("ip", fam, "route", "show", p.String())
		if err != nil {
			return false, err.Error()
		}
		line := strings.TrimSpace(out)
		return (line != "") == present, line
	})
}

// Stop ends every process of the daemon: SIGTERM (the daemons then close their sessions with a
// Cease notification and withdraw their kernel routes), and SIGKILL for one still running after 5 s.
// The processes are signalled by PID, in reverse start order (bgpd before zebra). Stopping a stopped
// daemon does nothing.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	for i := len(d.procs) - 1; i >= 0; i-- {
		if err := d.procs[i].stop(daemonStopTimeout); err != nil {
			t.Errorf("%s in %s: %v", d.Kind, d.Node.Name, err)
		}
	}
}

// Kill ends every process of the daemon with SIGKILL, as a crash would: no notification reaches the
// peers (they notice after the hold time) and routes the daemon put in the kernel stay there.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	for i := len(d.procs) - 1; i >= 0; i-- {
		if err := d.procs[i].stop(0); err != nil {
			t.Errorf("%s in %s: %v", d.Kind, d.Node.Name, err)
		}
	}
}

// Pause freezes every process of the daemon (SIGSTOP): its TCP connections stay open but it sends
// nothing, so its peers see the session die only when their hold time runs out, as with a hung
// daemon or a silent network failure. Resume, Stop or Kill end the pause.
func (d *Daemon) Pause(t testing.TB) {
	t.Helper()
	d.signalAll(t, syscall.SIGSTOP)
}

// Resume continues a paused daemon (SIGCONT).
func (d *Daemon) Resume(t testing.TB) {
	t.Helper()
	d.signalAll(t, syscall.SIGCONT)
}

func (d *Daemon) signalAll(t testing.TB, sig syscall.Signal) {
	t.Helper()
	for _, p := range d.procs {
		if !p.running() {
			t.Fatalf("%s in %s: %s is not running", d.Kind, d.Node.Name, p.name)
		}
		if err := syscall.Kill(p.pid, sig); err != nil {
			t.Fatalf("%s in %s: signal %s (pid %d): %v", d.Kind, d.Node.Name, p.name, p.pid, err)
		}
	}
}

// Restart stops the daemon (SIGTERM) if it runs and starts it again with the same files; the logs
// continue.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	d.Stop(t)
	d.start(t)
}

// newDaemon makes the daemon's private directory and registers its cleanup. The directory is made
// directly under the temp dir, not by t.TempDir: a unix socket path must fit in 107 bytes, and FRR's
// unprivileged user (forFRR) must reach it, which t.TempDir's 0700 parent forbids.
func newDaemon(t testing.TB, kind string, node NetNS, forFRR bool) *Daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "nlbgp-"+kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Kind: kind, Node: node, Dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			d.logTails(t)
		}
		d.Stop(t)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	if len(filepath.Join(dir, "zserv.api")) > maxSocketPath {
		t.Fatalf("%s: directory %s too long for unix sockets (set TMPDIR to a shorter path)", kind, dir)
	}
	if forFRR {
		if err := chownToUser(dir, frrUser); err != nil {
			t.Fatalf("frr: %v", err)
		}
	}
	return d
}

// chownToUser gives path to the named user and its primary group, mode 0750.
func chownToUser(path, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("look up user %q (is the frr package installed?): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, name, err)
	}
	return os.Chmod(path, 0o750)
}

// writeFile writes a file into the daemon's directory, readable by the daemon's user, and returns
// its path.
func (d *Daemon) writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(d.Dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if d.Kind == "frr" {
		if err := chownToUser(path, frrUser); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func (d *Daemon) add(name string, argv []string, ready func() error) {
	d.procs = append(d.procs, &daemonProc{name: name, argv: argv, log: filepath.Join(d.Dir, name+".log"), ready: ready})
}

func (d *Daemon) requireKind(t testing.TB, kind string) {
	t.Helper()
	if d.Kind != kind {
		t.Fatalf("%s in %s: this is not a %s daemon", d.Kind, d.Node.Name, kind)
	}
}

// start starts the processes that do not run, in order, each once the one before answers.
func (d *Daemon) start(t testing.TB) {
	t.Helper()
	for _, p := range d.procs {
		if p.running() {
			continue
		}
		if err := p.start(d.Node); err != nil {
			t.Fatalf("%s in %s: %v", d.Kind, d.Node.Name, err)
		}
		if err := p.waitReady(); err != nil {
			t.Fatalf("%s in %s: %v\n%s", d.Kind, d.Node.Name, err, tailFile(p.log, bgpLogTailLines))
		}
	}
}

func (p *daemonProc) running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// start runs p inside node with stdout and stderr appended to p.log. `ip netns exec` execs the daemon
// in place, so the PID is the daemon's own. The process is started from a goroutine that keeps its
// OS thread until the process is reaped: the parent-death signal (SIGKILL when the test binary dies,
// e.g. on a test timeout) follows the thread that forked, and an idle Go thread may otherwise exit.
// FRR drops privileges after start, which clears that signal: an FRR daemon outlives a killed test.
func (p *daemonProc) start(node NetNS) error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", node.Name}, p.argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		defer close(exited)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
	}()
	err = <-started
	logf.Close()
	if err != nil {
		<-exited
		return fmt.Errorf("start %s: %w", strings.Join(p.argv, " "), err)
	}
	p.pid, p.exited = cmd.Process.Pid, exited
	return nil
}

// waitReady polls p.ready until it succeeds; it fails when p exits first or daemonReadyTimeout passes.
func (p *daemonProc) waitReady() error {
	deadline := time.Now().Add(daemonReadyTimeout)
	for {
		err := p.ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s (pid %d) exited during start-up: %v", p.name, p.pid, p.err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) not ready after %v: %w", p.name, p.pid, daemonReadyTimeout, err)
		}
		time.Sleep(bgpPollInterval)
	}
}

// stop sends SIGTERM and waits up to grace for p to exit, then SIGKILL (at once when grace is 0).
func (p *daemonProc) stop(grace time.Duration) error {
	if !p.running() {
		return nil
	}
	if grace > 0 {
		_ = syscall.Kill(p.pid, syscall.SIGTERM)
		_ = syscall.Kill(p.pid, syscall.SIGCONT) // a paused process acts on SIGTERM only once continued
		select {
		case <-p.exited:
			return nil
		case <-time.After(grace):
		}
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	select {
	case <-p.exited:
		if grace > 0 {
			return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", p.name, p.pid, grace)
		}
		return nil
	case <-time.After(daemonStopTimeout):
		return fmt.Errorf("%s (pid %d) still running %v after SIGKILL", p.name, p.pid, daemonStopTimeout)
	}
}

// logTails prints the end of each of the daemon's logs.
func (d *Daemon) logTails(t testing.TB) {
	t.Helper()
	for _, p := range d.procs {
		t.Logf("%s in %s: last lines of %s:\n%s", d.Kind, d.Node.Name, p.log, tailFile(p.log, bgpLogTailLines))
	}
}

// tailFile returns the last n lines of the file at path, or why it cannot.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// requireBinaries fails t, naming the Debian package, when one of the programs is missing.
func requireBinaries(t testing.TB, pkg string, programs ...string) {
	t.Helper()
	for _, prog := range programs {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is not installed: install the Debian package %q (apt-get install -y --no-install-recommends %s): %v", prog, pkg, BGPPackages, err)
		}
	}
}
