package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// iperf3Package is the Debian package that provides iperf3 (`make deps` installs it).
const iperf3Package = "iperf3"

// Iperf3 timing: how long the server may take to listen, how much longer than the measurement the
// client may run (connection set-up, the results exchange), and how long the one-shot server may
// take to exit after its client.
const (
	iperf3ListenTimeout = 5 * time.Second
	iperf3ClientSlack   = 20 * time.Second
	iperf3ExitTimeout   = 5 * time.Second
)

// PingDF sends one echo request of payload bytes from inside from to addr (IPv4 or IPv6) with the
// don't-fragment bit set (IPv6 never fragments in flight), and waits up to two seconds for the reply:
// the probe of an MTU test. On a 1500-byte path, 1472 bytes pass over IPv4 (1452 over IPv6) and one
// more fails, at the sender when its route knows the MTU or at the hop that does not.
func PingDF(t testing.TB, from NetNS, addr string, payload int) error {
	t.Helper()
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("ping DF: %q is not an IP address: %w", addr, err)
	}
	cmd := []string{"ping", "-M", "do", "-s", strconv.Itoa(payload), "-c1", "-W2"}
	if a.Unmap().Is6() {
		cmd = append(cmd, "-6")
	}
	_, err = from.Exec(append(cmd, a.Unmap().String())...)
	return err
}

// iperf3Result is the part of `iperf3 -J` output Iperf3 reads.
type iperf3Result struct {
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// Iperf3 measures TCP throughput from client to server for seconds: it starts a one-shot iperf3
// server (`iperf3 -s -1`) in server on a free port, waits until it listens, runs the client against
// addr (one of server's addresses, IPv4 or IPv6) and returns what the server received, in bits per
// second. The server it started is killed by its PID, if it has not exited on its own, before
// Iperf3 returns (also when the test fails). A machine without iperf3 fails the test, naming the
// package to install.
func Iperf3(t testing.TB, server, client NetNS, addr string, seconds int) (float64, error) {
	t.Helper()
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatalf("iperf3 is not installed: install the Debian package %q (apt-get install -y %s): %v", iperf3Package, iperf3Package, err)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return 0, fmt.Errorf("iperf3: %q is not an IP address: %w", addr, err)
	}
	if seconds < 1 {
		return 0, fmt.Errorf("iperf3: %d seconds: must be at least 1", seconds)
	}
	port, err := freeTCPPort(server)
	if err != nil {
		return 0, fmt.Errorf("iperf3: %w", err)
	}
	p := strconv.Itoa(int(port))

	var serverOut bytes.Buffer
	srv := command(&server, "iperf3", "-s", "-1", "-p", p)
	srv.Stdout, srv.Stderr = &serverOut, &serverOut
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("iperf3: start server in %s: %w", server.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	// `ip netns exec` execs iperf3 in place, so this PID is the server's: killing it touches nothing
	// else. The one-shot server exits after a client that finished; after any other way out it would
	// wait for a client forever.
	measured := false
	defer func() {
		if measured {
			select {
			case <-exited:
				return
			case <-time.After(iperf3ExitTimeout):
			}
		}
		_ = srv.Process.Kill()
		<-exited
	}()

	if err := waitListening(server, port, exited); err != nil {
		return 0, fmt.Errorf("iperf3 server in %s: %w: %s", server.Name, err, serverOut.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second+iperf3ClientSlack)
	defer cancel()
	cl := exec.CommandContext(ctx, "ip", "netns", "exec", client.Name,
		"iperf3", "-c", a.Unmap().String(), "-p", p, "-t", strconv.Itoa(seconds), "-J")
	var stderr bytes.Buffer
	cl.Stderr = &stderr
	out, runErr := cl.Output()
	measured = runErr == nil
	var res iperf3Result
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("iperf3 client in %s to %s: %v (output not JSON: %v): %s", client.Name, addr, runErr, err, stderr.String())
	}
	if res.Error != "" {
		return 0, fmt.Errorf("iperf3 client in %s to %s: %s", client.Name, addr, res.Error)
	}
	if runErr != nil {
		return 0, fmt.Errorf("iperf3 client in %s to %s: %w: %s", client.Name, addr, runErr, stderr.String())
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

// freeTCPPort asks the kernel for a TCP port nobody uses in n. Nothing else binds ports in a test's
// namespace, so the port is still free when the caller's server binds it a moment later.
func freeTCPPort(n NetNS) (uint16, error) {
	var port uint16
	err := n.Do(func() error {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return err
		}
		port = uint16(l.Addr().(*net.TCPAddr).Port)
		return l.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("find a free TCP port in %s: %w", n.Name, err)
	}
	return port, nil
}

// waitListening returns once a TCP socket listens on port in n, or fails when the process that should
// open it exits (exited is closed) or iperf3ListenTimeout passes.
func waitListening(n NetNS, port uint16, exited <-chan struct{}) error {
	deadline := time.Now().Add(iperf3ListenTimeout)
	for {
		out, _ := n.Exec("ss", "-H", "-ltn", fmt.Sprintf("sport = :%d", port))
		if len(bytes.TrimSpace([]byte(out))) > 0 {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before listening on port %d", port)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on port %d after %v", port, iperf3ListenTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
