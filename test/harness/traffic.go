package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// pingInterval is StartPing's gap between echo requests: five a second, so a gap of a fifth of a second
// in the datapath already loses one.
const pingInterval = "0.2"

// PingRun is a ping running in the background (StartPing).
type PingRun struct {
	What string // "from -> addr", for messages

	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
}

// StartPing starts `ping -i 0.2` from inside from to addr, until Stop or the end of the test: a steady
// flow through whatever happens meanwhile.
func StartPing(t testing.TB, from NetNS, addr netip.Addr) *PingRun {
	t.Helper()
	args := []string{"ping", "-n", "-i", pingInterval}
	if addr.Unmap().Is6() {
		args = append(args, "-6")
	}
	p := &PingRun{What: from.Name + " -> " + addr.String(), done: make(chan struct{})}
	p.cmd = command(&from, append(args, addr.Unmap().String())...) // ip netns exec execs ping: the PID is ping's
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("ping %s: %v", p.What, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done })
	return p
}

var (
	pingReply   = regexp.MustCompile(`(?m)bytes from .* icmp_seq=(\d+) `)
	pingSummary = regexp.MustCompile(`(\d+) packets transmitted`)
)

// Stop interrupts the ping and returns how many echo requests it sent and which of them got no reply.
// The last request is left out of both: its reply may still have been on its way.
func (p *PingRun) Stop(t testing.TB) (sent int, lost []int) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("ping %s ignored SIGINT:\n%s", p.What, p.out.String())
	}
	out := p.out.String()
	m := pingSummary.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s printed no summary:\n%s", p.What, out)
	}
	sent, _ = strconv.Atoi(m[1])
	sent-- // the one possibly in flight
	replied := map[int]bool{}
	for _, r := range pingReply.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(r[1])
		replied[seq] = true
	}
	for seq := 1; seq <= sent; seq++ {
		if !replied[seq] {
			lost = append(lost, seq)
		}
	}
	return sent, lost
}

// streamChunk and streamPeriod make TCPStream's flow: 20 KiB a second.
const (
	streamChunk  = 1024
	streamPeriod = 50 * time.Millisecond
)

// TCPStream is one TCP connection between two namespaces carrying a steady flow (StartTCPStream).
type TCPStream struct {
	What string

	conn, peer net.Conn
	stop       chan struct{}
	wrote      chan struct{} // closed when the writer returns
	wg         sync.WaitGroup
	written    atomic.Int64
	read       atomic.Int64
	maxGap     atomic.Int64 // longest time the reader waited for data, in nanoseconds
	mu         sync.Mutex
	err        error
}

// StartTCPStream listens on addr:port inside to, connects from inside from and writes a chunk every
// 50 ms that the other end reads, until Stop or the end of the test. A datapath that stops carrying it
// shows as a long gap between reads (TCP retransmits with backoff) or as an error.
func StartTCPStream(t testing.TB, from, to NetNS, addr netip.Addr, port uint16) *TCPStream {
	t.Helper()
	ap := netip.AddrPortFrom(addr.Unmap(), port).String()
	s := &TCPStream{What: from.Name + " -> " + ap, stop: make(chan struct{}), wrote: make(chan struct{})}
	var ln net.Listener
	if err := to.Do(func() (err error) { ln, err = net.Listen("tcp", ap); return err }); err != nil {
		t.Fatalf("stream %s: listen: %v", s.What, err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	if err := from.Do(func() (err error) { s.conn, err = net.DialTimeout("tcp", ap, 5*time.Second); return err }); err != nil {
		t.Fatalf("stream %s: connect: %v", s.What, err)
	}
	select {
	case s.peer = <-accepted:
	case <-time.After(5 * time.Second):
	}
	if s.peer == nil {
		s.conn.Close()
		t.Fatalf("stream %s: not accepted", s.What)
	}
	s.wg.Add(2)
	go s.write()
	go s.readAll()
	t.Cleanup(s.close)
	return s
}

func (s *TCPStream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *TCPStream) write() {
	defer s.wg.Done()
	defer close(s.wrote)
	buf := bytes.Repeat([]byte{'x'}, streamChunk)
	tick := time.NewTicker(streamPeriod)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second)) // a full send buffer: the flow is stuck
		n, err := s.conn.Write(buf)
		s.written.Add(int64(n))
		if err != nil {
			s.fail(fmt.Errorf("write: %w", err))
			return
		}
	}
}

func (s *TCPStream) readAll() {
	defer s.wg.Done()
	buf := make([]byte, 64*1024)
	last := time.Now()
	for {
		n, err := s.peer.Read(buf)
		if n > 0 {
			if gap := time.Since(last); int64(gap) > s.maxGap.Load() {
				s.maxGap.Store(int64(gap))
			}
			last = time.Now()
			s.read.Add(int64(n))
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				s.fail(fmt.Errorf("read: %w", err))
			}
			return
		}
	}
}

func (s *TCPStream) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.conn.Close()
	s.peer.Close()
	s.wg.Wait()
}

// Stop stops writing, waits up to five seconds for the reader to get every byte written, closes the
// connection and reports the bytes written and read, the longest wait between two reads and the first
// error met.
func (s *TCPStream) Stop() (written, read int64, maxGap time.Duration, err error) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.wrote
	for deadline := time.Now().Add(5 * time.Second); s.read.Load() < s.written.Load() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	s.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written.Load(), s.read.Load(), time.Duration(s.maxGap.Load()), s.err
}
