package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/bgp"
	"github.com/netloom/netloom/test/harness"
)

// Timing of the two-node test. The hand-made route waits for an event (a path announced through the
// API), so nothing here waits for the 30 s resync.
const (
	sessionTimeout  = 15 * time.Second // hold time 3 s, connect retry 1 s
	withdrawTimeout = 2 * time.Second  // a Cease notification, not the hold timer, must drop the route
	stopGrace       = 10 * time.Second
	metricsAddr     = "127.0.0.1:9653" // inside node A's namespace: no clash with anything
)

// netloomdBinary is cmd/netloomd as the harness builds it (or takes it from $NETLOOM_BIN).
func netloomdBinary(t *testing.T) string {
	t.Helper()
	return filepath.Join(harness.PluginDir(t), "netloomd")
}

// netloomd is one daemon process run by `ip netns exec` (which execs in place: the PID is netloomd's).
type netloomd struct {
	node   harness.NetNS
	dir    string // config, socket, state, log
	log    string
	pid    int
	exited chan struct{}
	err    error // exit status, once exited is closed
}

func (d *netloomd) socket() string { return filepath.Join(d.dir, "netloomd.sock") }

// startNetloomd writes cfg to the daemon's directory and runs netloomd with it inside node. It is
// stopped (SIGTERM, then SIGKILL) by PID when the test ends, and its log printed if the test failed.
func startNetloomd(t *testing.T, bin string, node harness.NetNS, dir string, cfg map[string]any) *netloomd {
	t.Helper()
	d := &netloomd{node: node, dir: dir, log: filepath.Join(dir, "netloomd.log"), exited: make(chan struct{})}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "netloomd.json")
	if err := os.WriteFile(conf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", node.Name, bin, "--config", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	// The parent-death signal follows the thread that forked: keep it until the process is reaped.
	go func() {
		runtime.LockOSThread()
		defer close(d.exited)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.err = cmd.Wait()
	}()
	if err := <-started; err != nil {
		t.Fatalf("start netloomd in %s: %v", node.Name, err)
	}
	d.pid = cmd.Process.Pid
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(d.log)
			t.Logf("netloomd in %s, log:\n%s", node.Name, b)
		}
	})
	harness.WaitUntil(t, 10*time.Second, "netloomd in "+node.Name+" serves its API", func() (bool, string) {
		select {
		case <-d.exited:
			b, _ := os.ReadFile(d.log)
			t.Fatalf("netloomd in %s exited during start-up: %v\n%s", node.Name, d.err, b)
		default:
		}
		c, err := bgp.Dial("unix://" + d.socket())
		if err != nil {
			return false, err.Error()
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := c.Ping(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return d
}

// stop sends SIGTERM and waits for the exit; SIGKILL after stopGrace. Stopping a stopped daemon does
// nothing. It returns the exit status's error.
func (d *netloomd) stop() error {
	select {
	case <-d.exited:
		return d.err
	default:
	}
	_ = syscall.Kill(d.pid, syscall.SIGTERM)
	select {
	case <-d.exited:
		return d.err
	case <-time.After(stopGrace):
	}
	_ = syscall.Kill(d.pid, syscall.SIGKILL)
	<-d.exited
	return fmt.Errorf("netloomd (pid %d) ignored SIGTERM for %v and was killed", d.pid, stopGrace)
}

// httpGet fetches path from addr inside node. The connection is made on a thread inside the namespace;
// the socket stays there once made.
func httpGet(node harness.NetNS, addr, path string) (int, string, error) {
	var conn net.Conn
	if err := node.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	}); err != nil {
		return 0, "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// bgpRoutes lists node's routes of protocol 79, both families, one per line.
func bgpRoutes(t *testing.T, node harness.NetNS) string {
	t.Helper()
	return strings.TrimSpace(node.Run(t, "ip", "-4", "route", "show", "proto", "79") + node.Run(t, "ip", "-6", "route", "show", "proto", "79"))
}

func nodeConfig(dir string, asn, peerASN int, routerID, peer, originate string) map[string]any {
	return map[string]any{
		"bgp": map[string]any{
			"asn": asn, "routerID": routerID,
			"neighbors": []map[string]any{{"address": peer, "asn": peerASN, "holdTime": 3}},
			"originate": []string{originate},
		},
		"api":      map[string]any{"socket": filepath.Join(dir, "netloomd.sock")},
		"stateDir": filepath.Join(dir, "state"),
		"logLevel": "debug",
	}
}

// TestNetloomdTwoNodes runs two netloomd processes in two namespaces joined by a veth pair (eBGP,
// AS 65001 and 65002) and checks the routes each installs, the API socket, the metrics, the reconcile
// of protocol 79 (and only 79), the restore of bgp-route's records and a clean stop.
func TestNetloomdTwoNodes(t *testing.T) {
	harness.RequireRoot(t)
	bin := netloomdBinary(t)
	a, b := harness.NewNetNS(t, "nldA"), harness.NewNetNS(t, "nldB")
	a.Run(t, "ip", "link", "set", "lo", "up")
	b.Run(t, "ip", "link", "set", "lo", "up")
	a.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b.Name)
	a.Run(t, "ip", "addr", "add", "10.99.0.1/24", "dev", "eth0")
	b.Run(t, "ip", "addr", "add", "10.99.0.2/24", "dev", "eth0")
	a.Run(t, "ip", "link", "set", "eth0", "up")
	b.Run(t, "ip", "link", "set", "eth0", "up")

	dirA, dirB := t.TempDir(), t.TempDir()
	cfgA := nodeConfig(dirA, 65001, 65002, "10.99.0.1", "10.99.0.2", "10.244.1.0/24")
	cfgA["metrics"] = map[string]any{"listen": metricsAddr}
	cfgB := nodeConfig(dirB, 65002, 65001, "10.99.0.2", "10.99.0.1", "10.244.2.0/24")

	// B's bgp-route recorded a pod before B started: B re-announces it. A record of another speaker
	// stays unannounced.
	store, err := bgp.OpenStore(filepath.Join(dirB, "state"), "pods")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []bgp.Record{
		{Speaker: "unix://" + filepath.Join(dirB, "netloomd.sock"), ContainerID: "c1", IfName: "eth0",
			Announcements: []bgp.Announcement{{Prefix: netip.MustParsePrefix("10.244.2.9/32")}}},
		{Speaker: "unix:///run/other.sock", ContainerID: "c2", IfName: "eth0",
			Announcements: []bgp.Announcement{{Prefix: netip.MustParsePrefix("10.244.2.10/32")}}},
	} {
		if err := store.Write(r); err != nil {
			t.Fatal(err)
		}
	}

	// Routes of other protocols are never netloomd's: one for 10.251.0.0/24 must survive everything.
	a.Run(t, "ip", "route", "add", "10.251.0.0/24", "via", "10.99.0.2", "proto", "static")

	start := time.Now()
	dA := startNetloomd(t, bin, a, dirA, cfgA)
	dB := startNetloomd(t, bin, b, dirB, cfgB)

	for _, tc := range []struct {
		node   harness.NetNS
		prefix string
		via    string
	}{
		{a, "10.244.2.0/24", "10.99.0.2"},
		{b, "10.244.1.0/24", "10.99.0.1"},
		{a, "10.244.2.9/32", "10.99.0.2"}, // restored from B's record
	} {
		line := harness.WaitRoute(t, tc.node, tc.prefix, true, sessionTimeout)
		if !strings.Contains(line, "via "+tc.via) || !strings.Contains(line, "proto 79") {
			t.Errorf("%s in %s: %q, want via %s proto 79", tc.prefix, tc.node.Name, line, tc.via)
		}
	}
	t.Logf("routes exchanged %v after start", time.Since(start).Round(time.Millisecond))
	if out := a.Run(t, "ip", "route", "show", "10.244.2.10/32"); strings.TrimSpace(out) != "" {
		t.Errorf("a record of another speaker was announced: %s", out)
	}

	t.Run("API socket is 0600", func(t *testing.T) {
		for _, d := range []*netloomd{dA, dB} {
			st, err := os.Lstat(d.socket())
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode() != os.ModeSocket|0o600 {
				t.Errorf("%s: mode %v, want srw-------", d.socket(), st.Mode())
			}
		}
	})

	t.Run("metrics and healthz", func(t *testing.T) {
		harness.WaitUntil(t, 5*time.Second, "metrics", func() (bool, string) {
			code, body, err := httpGet(a, metricsAddr, "/metrics")
			if err != nil || code != http.StatusOK {
				return false, fmt.Sprintf("%d %v %s", code, err, body)
			}
			for _, want := range []string{
				`netloomd_bgp_session_up{neighbor="10.99.0.2"} 1`,
				`netloomd_routes_installed 2`, // 10.244.2.0/24 and the restored 10.244.2.9/32
				`netloomd_bgp_prefixes_received{neighbor="10.99.0.2",family="afi_ip_safi_unicast"} 2`,
				`netloomd_bgp_prefixes_advertised{neighbor="10.99.0.2",family="afi_ip_safi_unicast"} 1`,
			} {
				if !strings.Contains(body, want+"\n") {
					return false, fmt.Sprintf("no %q in:\n%s", want, body)
				}
			}
			return true, ""
		})
		code, body, err := httpGet(a, metricsAddr, "/healthz")
		if err != nil || code != http.StatusOK {
			t.Errorf("/healthz: %d %v %q", code, err, body)
		}
	})

	t.Run("reconcile removes stray protocol 79 routes only", func(t *testing.T) {
		a.Run(t, "ip", "route", "add", "10.250.0.0/24", "via", "10.99.0.2", "proto", "79")
		// An event (a pod path announced through B's API, as bgp-route does) makes A reconcile now
		// rather than at the 30 s resync.
		c, err := bgp.Dial("unix://" + dB.socket())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Announce(ctx, bgp.Announcement{Prefix: netip.MustParsePrefix("10.244.2.5/32")}); err != nil {
			t.Fatal(err)
		}
		harness.WaitRoute(t, a, "10.244.2.5/32", true, 5*time.Second)
		harness.WaitRoute(t, a, "10.250.0.0/24", false, 5*time.Second)
		// A next hop changed by hand is put back.
		a.Run(t, "ip", "route", "replace", "10.244.2.5/32", "via", "10.99.0.3", "proto", "79")
		if err := c.Withdraw(ctx, bgp.Announcement{Prefix: netip.MustParsePrefix("10.244.2.9/32")}); err != nil {
			t.Fatal(err)
		}
		harness.WaitRoute(t, a, "10.244.2.9/32", false, 5*time.Second)
		harness.WaitUntil(t, 5*time.Second, "10.244.2.5/32 back via 10.99.0.2", func() (bool, string) {
			out := a.Run(t, "ip", "route", "show", "10.244.2.5/32")
			return strings.Contains(out, "via 10.99.0.2 ") && strings.Contains(out, "proto 79"), out
		})
		if out := a.Run(t, "ip", "route", "show", "10.251.0.0/24"); !strings.Contains(out, "proto static") {
			t.Errorf("the static route was touched: %q", out)
		}
	})

	t.Run("SIGTERM withdraws", func(t *testing.T) {
		stopped := time.Now()
		if err := dB.stop(); err != nil {
			t.Errorf("netloomd in B: exit %v, want status 0", err)
		}
		if left := bgpRoutes(t, b); left != "" {
			t.Errorf("B's kernel keeps protocol 79 routes after stop:\n%s", left)
		}
		if _, err := os.Lstat(dB.socket()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("B's socket after stop: %v", err)
		}
		harness.WaitRoute(t, a, "10.244.2.0/24", false, withdrawTimeout)
		t.Logf("A dropped B's routes %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
		if left := bgpRoutes(t, a); left != "" {
			t.Errorf("A keeps protocol 79 routes of the stopped peer:\n%s", left)
		}
		harness.WaitUntil(t, 5*time.Second, "session down in metrics", func() (bool, string) {
			_, body, err := httpGet(a, metricsAddr, "/metrics")
			want := `netloomd_bgp_session_up{neighbor="10.99.0.2"} 0` + "\n"
			return err == nil && strings.Contains(body, want) && strings.Contains(body, "netloomd_routes_installed 0\n"), fmt.Sprint(err, body)
		})
		if err := dA.stop(); err != nil {
			t.Errorf("netloomd in A: exit %v, want status 0", err)
		}
		if out := a.Run(t, "ip", "route", "show", "10.251.0.0/24"); !strings.Contains(out, "proto static") {
			t.Errorf("A's static route after stop: %q", out)
		}
	})
}

// TestNetloomdCheckConfig runs `netloomd --check-config` on good and bad files: exit status 0 and 2,
// the bad key named on stderr.
func TestNetloomdCheckConfig(t *testing.T) {
	harness.RequireRoot(t) // builds and runs the binary, like the test above
	bin := netloomdBinary(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, json string
		code       int
		want       string
	}{
		{"good", `{"bgp":{"asn":65001,"routerID":"10.99.0.1"}}`, 0, "ok"},
		{"bad holdTime", `{"bgp":{"asn":65001,"routerID":"10.99.0.1","neighbors":[{"address":"10.99.0.2","asn":65002,"holdTime":2}]}}`, 2, "bgp.neighbors[0].holdTime"},
		{"unknown key", `{"bgp":{"asnn":65001}}`, 2, "asnn"},
		{"missing file", "", 2, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if tc.json != "" {
				if err := os.WriteFile(path, []byte(tc.json), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command(bin, "--check-config", "--config", path).CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.want) {
				t.Errorf("exit %d, output %q; want %d naming %q", code, out, tc.code, tc.want)
			}
		})
	}
}
