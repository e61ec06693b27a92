package harness

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// command returns cmd to run inside n, or in the host namespace when n is nil.
func command(n *NetNS, cmd ...string) *exec.Cmd {
	if n == nil {
		return exec.Command(cmd[0], cmd[1:]...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, cmd...)...)
}

// ConnectToHost joins n to the host namespace by a veth pair, as a second machine on a link to the
// node: hostAddr (e.g. "10.216.1.1/30") goes on the host end, nsAddr on n's end, and n routes
// everything of nsAddr's family through hostAddr. The pair is removed when n is deleted or the test
// ends.
func ConnectToHost(t testing.TB, n NetNS, hostAddr, nsAddr string) Wire {
	t.Helper()
	hostName := Unique("nlh")
	peerName := Unique("nlp")
	hp, err := netip.ParsePrefix(hostAddr)
	if err != nil {
		t.Fatal(err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = hostName
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peerName}); err != nil {
		t.Fatalf("create veth %s: %v", hostName, err)
	}
	RemoveLinkOnCleanup(t, hostName)
	// No duplicate address detection on the pair's link-local addresses: until it finishes (1-2 s) the
	// ends cannot resolve each other's IPv6 neighbours, and the first connections time out.
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv6.conf." + hostName + ".accept_dad=0"},
		{"ip", "link", "set", peerName, "netns", n.Name},
		{"ip", "netns", "exec", n.Name, "sysctl", "-qw", "net.ipv6.conf." + peerName + ".accept_dad=0"},
		{"ip", "addr", "add", hostAddr, "dev", hostName},
		{"ip", "link", "set", hostName, "up"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	family := "-4"
	if hp.Addr().Is6() {
		family = "-6"
	}
	n.Run(t, "ip", "addr", "add", nsAddr, "dev", peerName, "nodad")
	n.Run(t, "ip", "link", "set", peerName, "up")
	n.Run(t, "ip", "link", "set", "lo", "up")
	n.Run(t, "ip", family, "route", "add", "default", "via", hp.Addr().String())
	return Wire{Host: hostName, Peer: peerName, NS: n}
}

// Wire is a veth pair from the host namespace to a test namespace.
type Wire struct {
	Host, Peer string // the ends' names: Host in the host namespace, Peer in NS
	NS         NetNS
}

// AddAddress puts one more address on the host end of w and, when nsAddr is not empty, on the far
// end, with a default route of that family through hostAddr.
func AddAddress(t testing.TB, w Wire, hostAddr, nsAddr string) {
	t.Helper()
	if out, err := exec.Command("ip", "addr", "add", hostAddr, "dev", w.Host, "nodad").CombinedOutput(); err != nil {
		t.Fatalf("ip addr add %s: %v: %s", hostAddr, err, out)
	}
	if nsAddr == "" {
		return
	}
	hp := netip.MustParsePrefix(hostAddr)
	family := "-4"
	if hp.Addr().Is6() {
		family = "-6"
	}
	w.NS.Run(t, "ip", "addr", "add", nsAddr, "dev", w.Peer, "nodad")
	w.NS.Run(t, "ip", family, "route", "replace", "default", "via", hp.Addr().String())
}

// Serve starts a server in n (nil: the host) that answers every TCP connection or UDP datagram on
// port with reply and a newline, and stops it when the test ends. It returns once the port is bound.
func Serve(t testing.TB, n *NetNS, proto string, port uint16, reply string) {
	t.Helper()
	var listen string
	switch proto {
	case "tcp":
		listen = fmt.Sprintf("TCP6-LISTEN:%d,ipv6only=0,reuseaddr,fork", port)
	case "udp":
		listen = fmt.Sprintf("UDP6-RECVFROM:%d,ipv6only=0,reuseaddr,fork", port)
	default:
		t.Fatalf("Serve: protocol %q", proto)
	}
	cmd := command(n, "socat", listen, "SYSTEM:echo "+reply)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start socat: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	// Wait for the socket: ss lists it once socat has bound.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := command(n, "ss", "-H", "-lnu"+map[string]string{"tcp": "t", "udp": ""}[proto], fmt.Sprintf("sport = :%d", port)).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("socat did not bind %s port %d", proto, port)
}

// Dial connects from n (nil: the host) to addr:port over proto (sending one line over UDP) and returns
// what came back, trimmed. srcPort, when not zero, fixes the client's source port (to reuse a conntrack flow).
func Dial(n *NetNS, proto string, addr netip.Addr, port, srcPort uint16) (string, error) {
	ap := netip.AddrPortFrom(addr, port).String()
	target := map[string]string{"tcp": "TCP:", "udp": "UDP:"}[proto] + ap + ",connect-timeout=2"
	if proto == "udp" {
		target = "UDP:" + ap
	}
	if srcPort != 0 {
		target += fmt.Sprintf(",sourceport=%d,reuseaddr", srcPort)
	}
	// UDP may lose a datagram (or its answer) on a loaded machine, as any UDP client knows: it tries
	// up to three times, from the same source port, before it reports silence.
	attempts := 1
	if proto == "udp" {
		attempts = 3
	}
	var out []byte
	for range attempts {
		cmd := command(n, "socat", "-T3", "-t3", "-", target) // -t: wait as long for the answer after our line is sent
		// A TCP client sends nothing: the server answers and closes at once, and data it had not read
		// would turn its close into a reset that can overtake the answer. UDP needs a datagram.
		cmd.Stdin = strings.NewReader("")
		if proto == "udp" {
			cmd.Stdin = strings.NewReader("hello\n")
		}
		var err error
		out, err = cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("socat %s %s: %w: %s", proto, ap, err, out)
		}
		if len(strings.TrimSpace(string(out))) > 0 {
			break
		}
	}
	return strings.TrimSpace(string(out)), nil
}
