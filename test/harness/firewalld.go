package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// firewalldStartTimeout bounds how long StartFirewalld waits for firewalld to answer on its bus; it
// usually takes one to two seconds, longer on a busy machine.
const firewalldStartTimeout = 60 * time.Second

// firewalldStopTimeout is how long a stopped firewalld gets to remove its nftables table (CleanupOnExit)
// before it is killed.
const firewalldStopTimeout = 15 * time.Second

// busConfig is a private system bus: type system, so firewalld and firewall-cmd treat it as the system
// bus; root may own and call anything, nobody else anything. Its socket is a path in the test's own
// directory, never the node's /run/dbus/system_bus_socket.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy user="root">
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
  <policy context="default">
    <deny own="*"/>
    <deny send_type="method_call"/>
  </policy>
</busconfig>
`

// FirewalldDefaultZone is the default zone of the firewalld StartFirewalld runs: "drop", so interfaces
// and sources in no zone get nothing forwarded, and a pod reaches past the node only once its address
// is a source of a zone that accepts (trusted).
const FirewalldDefaultZone = "drop"

// firewalldConf is the firewalld.conf of a test's firewalld: nftables (it touches no iptables table of
// the node namespace's other tests), its table removed when it stops.
const firewalldConf = `DefaultZone=` + FirewalldDefaultZone + `
FirewallBackend=nftables
CleanupOnExit=yes
CleanupModulesOnExit=no
IPv6_rpfilter=no
LogDenied=off
Lockdown=no
`

// Firewalld is a firewalld that StartFirewalld runs inside a test's node namespace, with a private
// D-Bus system bus of its own. Plugins reach it when their environment has Env (Runtime.WithEnv); the
// rules it writes are in the node namespace only.
type Firewalld struct {
	NetNS NetNS
	// BusAddress is the private bus, as DBUS_SYSTEM_BUS_ADDRESS carries it.
	BusAddress string
	dir        string
	bus, fw    *process
}

// process is a daemon the harness started and its exit.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned
	err  error         // cmd.Wait's error, once done is closed
}

func startProcess(name string, cmd *exec.Cmd, log *os.File) (*process, error) {
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process (by the PID the harness started), waits up to grace for it to end,
// then kills it.
func (p *process) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// StartFirewalld starts a private dbus-daemon and a firewalld (default zone FirewalldDefaultZone,
// nftables backend, its configuration in a temporary directory) inside node, and returns once firewalld
// answers `firewall-cmd --state` on that bus. t.Cleanup stops both (firewalld first, so it removes its
// table) and removes the directory. Both run through `ip netns exec`, which execs them in place: the PIDs
// the harness holds are theirs, and nothing else is ever signalled.
//
// Install firewalld with `make deps`, which masks firewalld.service: it must never run on the node
// itself.
func StartFirewalld(t testing.TB, node NetNS) *Firewalld {
	t.Helper()
	RequireRoot(t)
	for _, prog := range []string{"dbus-daemon", "firewalld", "firewall-cmd"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s: %v (install it with `make deps`)", prog, err)
		}
	}
	// Not t.TempDir(): a unix socket path must stay under 108 bytes, and test names can be long.
	dir, err := os.MkdirTemp("", "nlfwd-")
	if err != nil {
		t.Fatal(err)
	}
	f := &Firewalld{NetNS: node, dir: dir, BusAddress: "unix:path=" + filepath.Join(dir, "bus")}
	t.Cleanup(func() {
		f.stop()
		if t.Failed() {
			f.logTo(t)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	etc := filepath.Join(dir, "etc")
	for name, text := range map[string]string{
		"bus.conf":           fmt.Sprintf(busConfig, filepath.Join(dir, "bus")),
		"etc/firewalld.conf": firewalldConf,
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close() // the daemons hold their own descriptors

	f.bus, err = startProcess("dbus-daemon", exec.Command("ip", "netns", "exec", node.Name,
		"dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--nopidfile", "--nosyslog"), log)
	if err != nil {
		t.Fatal(err)
	}
	fw := exec.Command("ip", "netns", "exec", node.Name,
		"firewalld", "--nofork", "--nopid", "--system-config", etc, "--log-target", "console")
	fw.Env = append(os.Environ(), f.Env()...)
	deadline := time.Now().Add(firewalldStartTimeout)
	for !f.busUp() {
		if f.bus.exited() || time.Now().After(deadline) {
			t.Fatalf("private dbus-daemon did not come up (%v):\n%s", f.bus.err, f.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f.fw, err = startProcess("firewalld", fw, log); err != nil {
		t.Fatal(err)
	}
	for {
		out, err := f.Cmd("--state")
		if err == nil && strings.TrimSpace(out) == "running" {
			return f
		}
		if f.fw.exited() || time.Now().After(deadline) {
			t.Fatalf("firewalld did not answer on its bus within %v (%v; last firewall-cmd --state: %v %s):\n%s",
				firewalldStartTimeout, f.fw.err, err, out, f.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// busUp tells whether the private bus's socket accepts connections.
func (f *Firewalld) busUp() bool {
	_, err := os.Stat(filepath.Join(f.dir, "bus"))
	return err == nil
}

// Env is what a plugin's environment needs to reach this firewalld: its bus as the system bus.
func (f *Firewalld) Env() []string {
	return []string{"DBUS_SYSTEM_BUS_ADDRESS=" + f.BusAddress}
}

// Cmd runs firewall-cmd with args in the node namespace over the private bus and returns its combined
// output; err carries firewall-cmd's exit status (e.g. 1 for "no" of a --query-*).
func (f *Firewalld) Cmd(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", f.NetNS.Name, "firewall-cmd"}, args...)...)
	cmd.Env = append(os.Environ(), f.Env()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Run is Cmd that fails t when firewall-cmd fails.
func (f *Firewalld) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := f.Cmd(args...)
	if err != nil {
		t.Fatalf("firewall-cmd %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// Sources lists the sources of zone in firewalld's runtime configuration.
func (f *Firewalld) Sources(t testing.TB, zone string) []string {
	t.Helper()
	return strings.Fields(f.Run(t, "--zone="+zone, "--list-sources"))
}

// AddZone creates a zone with target (ACCEPT, DROP, ...) in the permanent configuration (the test's
// own directory) and reloads firewalld so its runtime has it; runtime sources added before are lost.
func (f *Firewalld) AddZone(t testing.TB, zone, target string) {
	t.Helper()
	f.Run(t, "--permanent", "--new-zone="+zone)
	f.Run(t, "--permanent", "--zone="+zone, "--set-target="+target)
	f.Run(t, "--reload")
}

// Stop stops firewalld now (its table goes with it), as an administrator's `systemctl stop firewalld`
// would; the bus stays. The cleanup does not stop it again.
func (f *Firewalld) Stop(t testing.TB) {
	t.Helper()
	f.fw.stop(firewalldStopTimeout)
	if _, err := f.Cmd("--state"); err == nil {
		t.Fatal("firewalld still answers after it was stopped")
	}
}

// stop ends firewalld, then the bus, each by the PID the harness started.
func (f *Firewalld) stop() {
	f.fw.stop(firewalldStopTimeout)
	f.bus.stop(firewalldStopTimeout)
}

func (f *Firewalld) log() string {
	b, err := os.ReadFile(filepath.Join(f.dir, "log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err.Error()
	}
	return string(b)
}

func (f *Firewalld) logTo(t testing.TB) {
	if l := strings.TrimSpace(f.log()); l != "" {
		t.Logf("dbus-daemon and firewalld in %s said:\n%s", f.NetNS.Name, l)
	}
}
