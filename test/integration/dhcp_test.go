package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/dhcp"
	"github.com/netloom/netloom/pkg/fault"
	"github.com/netloom/netloom/test/harness"
)

// dhcpNet is one test network: pods on a DHCPLAN whose dnsmasq hands out the addresses, the dhcp IPAM
// plugin talking to the daemon at Socket. The pods are macvlans on the LAN's master, or, with Bridge
// set, veths on that bridge, which has the LAN's master as a port. The main plugin creates the pod's
// link before it calls dhcp, which runs its exchange on it.
type dhcpNet struct {
	LAN    *harness.DHCPLAN
	Name   string
	Socket string
	Bridge string
}

// dhcpSeq numbers the LANs, 10.233.<n>.0/24, so parallel tests never share a subnet.
var dhcpSeq struct {
	sync.Mutex
	n int
}

// dhcpRuntime is a runtime finding the plugins in dirs first (a reference dhcp or macvlan), then
// netloom's.
func dhcpRuntime(t *testing.T, dirs ...string) *harness.Runtime {
	t.Helper()
	return harness.NewRuntimeWithPath(t, append(dirs, harness.PluginDir(t))...)
}

func newDHCPNet(t *testing.T, socket string) *dhcpNet {
	t.Helper()
	dhcpSeq.Lock()
	dhcpSeq.n++
	n := dhcpSeq.n
	dhcpSeq.Unlock()
	return &dhcpNet{LAN: harness.NewDHCPLAN(t, 233, n), Name: harness.Unique("dhnet"), Socket: socket}
}

// conflist is a macvlan network whose IPAM is dhcp, asking for the DNS server, domain and static
// routes besides the default routers and subnet mask.
func (n *dhcpNet) conflist() []byte {
	main := map[string]any{"type": "macvlan", "master": n.LAN.Master, "mode": "bridge"}
	if n.Bridge != "" {
		main = map[string]any{"type": "bridge", "bridge": n.Bridge}
	}
	main["ipam"] = map[string]any{"type": "dhcp", "daemonSocketPath": n.Socket,
		"request": []any{map[string]any{"option": "6"}, map[string]any{"option": "15"}, map[string]any{"option": "33"}}}
	out, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": n.Name, "plugins": []any{main}})
	return out
}

// onBridge makes the LAN's master a port of a new bridge the pods attach to, removed when t ends.
func (n *dhcpNet) onBridge(t *testing.T) {
	t.Helper()
	n.Bridge = harness.Unique("nldb")
	la := netlink.NewLinkAttrs()
	la.Name = n.Bridge
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		t.Fatalf("create bridge %s: %v", n.Bridge, err)
	}
	harness.RemoveLinkOnCleanup(t, n.Bridge)
	for _, c := range [][]string{
		{"ip", "link", "set", n.LAN.Master, "master", n.Bridge},
		{"ip", "link", "set", n.Bridge, "up"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
}

// ipamConf is the configuration macvlan passes its IPAM plugin: the network's, with the dhcp ipam.
func (n *dhcpNet) ipamConf() []byte {
	var list struct {
		Plugins []map[string]any `json:"plugins"`
	}
	_ = json.Unmarshal(n.conflist(), &list)
	p := list.Plugins[0]
	p["cniVersion"], p["name"] = "1.1.0", n.Name
	out, _ := json.Marshal(p)
	return out
}

// netconf is the dhcp plugin's own configuration for the network, for calling the binary directly.
func (n *dhcpNet) netconf() []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": n.Name, "type": "dhcp",
		"ipam": map[string]any{"type": "dhcp", "daemonSocketPath": n.Socket}})
	return out
}

type dhcpPod struct {
	NS     harness.NetNS
	ID     string
	Addr   netip.Addr
	Result *current.Result
}

// addDHCPPod runs ADD for a new pod and registers its DEL for cleanup.
func addDHCPPod(t *testing.T, rt *harness.Runtime, n *dhcpNet) dhcpPod {
	t.Helper()
	p := dhcpPod{NS: harness.NewNetNS(t, "dhpod"), ID: harness.Unique("ctr")}
	list := n.conflist()
	r, err := rt.Add(t, list, p.ID, p.NS.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD %s: %v", p.ID, err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, p.ID, p.NS.Path, "eth0", nil) })
	if p.Result, err = current.NewResultFromResult(r); err != nil {
		t.Fatal(err)
	}
	addrs := podAddrs(t, r)
	if len(addrs) != 1 {
		t.Fatalf("ADD %s: want one address, got %v", p.ID, addrs)
	}
	p.Addr = addrs[0].Addr()
	if !n.LAN.Subnet.Contains(p.Addr) || p.Addr.Less(n.LAN.First) || n.LAN.Last.Less(p.Addr) {
		t.Fatalf("ADD %s: address %s outside dnsmasq's range %s-%s", p.ID, p.Addr, n.LAN.First, n.LAN.Last)
	}
	return p
}

// requireServerLease checks that dnsmasq holds p's address for p's client identifier.
func requireServerLease(t *testing.T, n *dhcpNet, p dhcpPod) harness.DnsmasqLease {
	t.Helper()
	l, ok := n.LAN.Lease(t, p.Addr)
	if !ok {
		t.Fatalf("dnsmasq holds no lease of %s: %+v", p.Addr, n.LAN.Leases(t))
	}
	if want := dhcp.ClientID(p.ID, n.Name, "eth0"); l.ClientID != want {
		t.Errorf("dnsmasq's lease of %s is for client %q, want %q", p.Addr, l.ClientID, want)
	}
	return l
}

// waitReleased waits until dnsmasq no longer holds addr (a DHCPRELEASE arrived).
func waitReleased(t *testing.T, n *dhcpNet, addr netip.Addr) {
	t.Helper()
	harness.WaitUntil(t, 10*time.Second, "dnsmasq releases "+addr.String(), func() (bool, string) {
		_, held := n.LAN.Lease(t, addr)
		return !held, "still in " + n.LAN.LeaseFile
	})
}

// delTwice runs DEL twice (the second finds nothing and succeeds) and checks the lease is released and
// the pod's interface gone.
func delReleased(t *testing.T, rt *harness.Runtime, n *dhcpNet, p dhcpPod) {
	t.Helper()
	delTwice(t, rt, n.conflist(), p.ID, p.NS, "eth0", nil)
	waitReleased(t, n, p.Addr)
	if err := p.NS.Do(func() error { _, err := netlink.LinkByName("eth0"); return err }); err == nil {
		t.Errorf("eth0 still in %s after DEL", p.NS.Name)
	}
}

func TestDHCPLeaseFromDnsmasq(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp")
	n := newDHCPNet(t, d.DHCPSocket())
	rt := dhcpRuntime(t)
	p := addDHCPPod(t, rt, n)

	// The result: the leased address in the LAN's /24, the router as gateway and default route, and the
	// static route (option 33).
	ip := p.Result.IPs[0]
	if ones, _ := ip.Address.Mask.Size(); ones != 24 || ip.Gateway.String() != n.LAN.Server.String() {
		t.Errorf("IP config %+v: want a /24 with gateway %s", ip, n.LAN.Server)
	}
	routes := map[string]string{}
	for _, r := range p.Result.Routes {
		routes[r.Dst.String()] = r.GW.String()
	}
	base := strings.TrimSuffix(n.LAN.Server.String(), "1")
	if routes["0.0.0.0/0"] != n.LAN.Server.String() || routes[harness.StaticRouteDst] != base+"254" {
		t.Errorf("routes %v: want the default via %s and %s via %s254", routes, n.LAN.Server, harness.StaticRouteDst, base)
	}

	// The kernel: macvlan put the address and routes on eth0; the pod reaches the server.
	out := p.NS.Run(t, "ip", "-4", "addr", "show", "dev", "eth0")
	if !strings.Contains(out, p.Addr.String()+"/24") {
		t.Errorf("eth0 in the pod lacks %s/24: %s", p.Addr, out)
	}
	if out := p.NS.Run(t, "ip", "-4", "route", "show", "default"); !strings.Contains(out, "via "+n.LAN.Server.String()) {
		t.Errorf("pod default route: %q", out)
	}
	if err := harness.Ping(t, p.NS, n.LAN.Server.String()); err != nil {
		t.Errorf("ping the DHCP server from the pod: %v", err)
	}
	// The server: a lease of that address for the attachment's client identifier.
	requireServerLease(t, n, p)

	list := n.conflist()
	if err := rt.Check(t, list, p.ID, p.NS.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := rt.Status(t, list); err != nil {
		t.Errorf("STATUS with the daemon running: %v", err)
	}
	// The IPAM plugin alone, as a main plugin calls it for a retried ADD: the daemon answers with the
	// lease it holds (no new exchange), with the DNS server and domain netloom adds (the reference
	// macvlan replaces a result's DNS with its own "dns" key, so the chain's result cannot show them).
	env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": p.ID, "CNI_NETNS": p.NS.Path, "CNI_IFNAME": "eth0"}
	res, err := harness.RunPlugin(t, "dhcp", env, n.ipamConf())
	if err != nil {
		t.Fatalf("dhcp ADD again: %v: %s", err, res)
	}
	var again current.Result
	if err := json.Unmarshal(res, &again); err != nil {
		t.Fatalf("dhcp ADD result %s: %v", res, err)
	}
	if len(again.IPs) != 1 || again.IPs[0].Address.IP.String() != p.Addr.String() {
		t.Errorf("dhcp ADD again: %s, want %s again", res, p.Addr)
	}
	if len(again.DNS.Nameservers) != 1 || again.DNS.Nameservers[0] != n.LAN.DNS.String() || again.DNS.Domain != "dhcp.test" {
		t.Errorf("DNS %+v: want nameserver %s, domain dhcp.test", again.DNS, n.LAN.DNS)
	}
	// In every CNI version a runtime may speak.
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0"} {
		var c map[string]any
		_ = json.Unmarshal(n.ipamConf(), &c)
		c["cniVersion"] = v
		stdin, _ := json.Marshal(c)
		out, err := harness.RunPlugin(t, "dhcp", env, stdin)
		if err != nil || !strings.Contains(string(out), `"cniVersion": "`+v+`"`) || !strings.Contains(string(out), p.Addr.String()) {
			t.Errorf("ADD in cniVersion %s: %v: %s", v, err, out)
		}
	}
	delReleased(t, rt, n, p)
}

// TestDHCPRenewal waits for the daemon to renew a lease at T1 (half of dnsmasq's two minutes) and
// measures when it did.
func TestDHCPRenewal(t *testing.T) {
	harness.RequireRoot(t)
	if testing.Short() {
		t.Skip("waits a minute for the renewal")
	}
	t.Parallel()
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp")
	n := newDHCPNet(t, d.DHCPSocket())
	rt := dhcpRuntime(t)
	start := time.Now()
	p := addDHCPPod(t, rt, n)
	first := requireServerLease(t, n, p)
	var renewed harness.DnsmasqLease
	harness.WaitUntil(t, harness.DHCPLANLease*3/4, "dnsmasq extends the lease", func() (bool, string) {
		l, ok := n.LAN.Lease(t, p.Addr)
		renewed = l
		return ok && l.Expiry.After(first.Expiry), "expiry " + l.Expiry.String()
	})
	took := time.Since(start)
	t.Logf("renewed %v after ADD (T1 = %v); expiry moved by %v", took.Round(time.Second), harness.DHCPLANLease/2, renewed.Expiry.Sub(first.Expiry))
	if took < harness.DHCPLANLease/2-5*time.Second {
		t.Errorf("renewed after %v, before T1 (%v)", took, harness.DHCPLANLease/2)
	}
	if err := rt.Check(t, n.conflist(), p.ID, p.NS.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK after the renewal: %v", err)
	}
	delReleased(t, rt, n, p)
}

// TestDHCPDaemonRestart: a daemon stopped with SIGTERM leaves the leases with the pods (no release) and
// removes its socket; after a restart, CHECK takes the lease up again (same client identifier, same
// address) and DEL releases it. A daemon killed with SIGKILL leaves its socket; the next one replaces it.
func TestDHCPDaemonRestart(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp")
	n := newDHCPNet(t, d.DHCPSocket())
	rt := dhcpRuntime(t)
	list := n.conflist()
	p := addDHCPPod(t, rt, n)

	d.Stop(t)
	if _, err := os.Stat(d.DHCPSocket()); !os.IsNotExist(err) {
		t.Errorf("socket after SIGTERM: %v, want it removed", err)
	}
	requireServerLease(t, n, p) // not released: the pod keeps its address
	if err := rt.Status(t, list); err == nil || !strings.Contains(err.Error(), d.DHCPSocket()) {
		t.Errorf("STATUS with no daemon: %v, want an error naming the socket", err)
	}

	d.Restart(t)
	if err := rt.Check(t, list, p.ID, p.NS.Path, "eth0", nil); err != nil {
		t.Fatalf("CHECK after the restart: %v", err)
	}
	requireServerLease(t, n, p)

	d.Kill(t)
	if _, err := os.Stat(d.DHCPSocket()); err != nil {
		t.Fatalf("a killed daemon's socket: %v", err)
	}
	d.Restart(t)
	harness.WaitUntil(t, 10*time.Second, "the new daemon answers", func() (bool, string) {
		err := dhcp.Ping(d.DHCPSocket())
		return err == nil, errString(err)
	})
	q := addDHCPPod(t, rt, n)
	if q.Addr == p.Addr {
		t.Errorf("two pods share %s", p.Addr)
	}
	// The new daemon never saw p: CHECK takes it up, then DEL releases it.
	if err := rt.Check(t, list, p.ID, p.NS.Path, "eth0", nil); err != nil {
		t.Fatalf("CHECK after the kill: %v", err)
	}
	delReleased(t, rt, n, p)
	delReleased(t, rt, n, q)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestDHCPReferenceDaemonNetloomPlugin: netloom's plugin talks to the reference daemon.
func TestDHCPReferenceDaemonNetloomPlugin(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	ref := filepath.Join(harness.ReferencePlugin(t, "dhcp"), "dhcp")
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, ref, "-timeout", "3s", "-resendtimeout", "30s")
	n := newDHCPNet(t, d.DHCPSocket())
	rt := dhcpRuntime(t)
	p := addDHCPPod(t, rt, n)
	requireServerLease(t, n, p)
	if p.Result.IPs[0].Gateway.String() != n.LAN.Server.String() {
		t.Errorf("gateway %v, want %s", p.Result.IPs[0].Gateway, n.LAN.Server)
	}
	if err := rt.Check(t, n.conflist(), p.ID, p.NS.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := rt.Status(t, n.conflist()); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	// GC: the reference daemon has no GC method; that is not an error.
	if err := dhcpGC(t, n, p.ID); err != nil {
		t.Errorf("GC against the reference daemon: %v", err)
	}
	// DEL twice succeeds. The reference daemon sends its DHCPRELEASE from 0.0.0.0, which the server's
	// kernel drops (a martian source) before dnsmasq sees it: the lease stays until it expires.
	for i := range 2 {
		if err := rt.Del(t, n.conflist(), p.ID, p.NS.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	time.Sleep(time.Second)
	if _, held := n.LAN.Lease(t, p.Addr); held {
		t.Logf("as expected of the reference daemon, dnsmasq still holds %s after DEL (its DHCPRELEASE comes from 0.0.0.0)", p.Addr)
	}
}

// TestDHCPNetloomDaemonReferencePlugin: the reference plugin talks to netloom's daemon.
func TestDHCPNetloomDaemonReferencePlugin(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	refDir := harness.ReferencePlugin(t, "dhcp")
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp")
	n := newDHCPNet(t, d.DHCPSocket())
	// The reference dhcp first on the path: macvlan comes from netloom's directory.
	rt := dhcpRuntime(t, refDir)
	p := addDHCPPod(t, rt, n)
	requireServerLease(t, n, p)
	if err := rt.Check(t, n.conflist(), p.ID, p.NS.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	delReleased(t, rt, n, p)
}

// TestDHCPSwitchFromReference: a pod attached by the reference plugin and daemon survives a switch to
// netloom's: the new daemon takes the lease up at CHECK and releases it at DEL.
func TestDHCPSwitchFromReference(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	refDir := harness.ReferencePlugin(t, "dhcp")
	node := harness.NewNetNS(t, "dhnode")
	refd := harness.StartDHCPDaemon(t, node, filepath.Join(refDir, "dhcp"))
	n := newDHCPNet(t, refd.DHCPSocket())
	p := addDHCPPod(t, dhcpRuntime(t, refDir), n)
	refd.Stop(t)

	harness.StartDHCPDaemon(t, node, "dhcp", "-socketpath", refd.DHCPSocket())
	rt := dhcpRuntime(t)
	// libcni's cache of the ADD is in the other runtime's directory: CHECK with the ADD's result.
	if err := checkWithResult(t, rt, n, p); err != nil {
		t.Fatalf("CHECK by netloom of the reference's pod: %v", err)
	}
	requireServerLease(t, n, p)
	delReleased(t, rt, n, p)
}

// dhcpGC runs netloom's dhcp GC directly, as a main plugin delegating GC to its IPAM would, with the
// attachments (eth0 of each container) that stay valid.
func dhcpGC(t *testing.T, n *dhcpNet, valid ...string) error {
	t.Helper()
	var conf map[string]any
	if err := json.Unmarshal(n.ipamConf(), &conf); err != nil {
		t.Fatal(err)
	}
	atts := []map[string]string{}
	for _, id := range valid {
		atts = append(atts, map[string]string{"containerID": id, "ifname": "eth0"})
	}
	conf["cni.dev/valid-attachments"] = atts
	stdin, _ := json.Marshal(conf)
	out, err := harness.RunPlugin(t, "dhcp", map[string]string{"CNI_COMMAND": "GC"}, stdin)
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// checkWithResult runs netloom's dhcp CHECK directly with p's ADD result as prevResult.
func checkWithResult(t *testing.T, _ *harness.Runtime, n *dhcpNet, p dhcpPod) error {
	t.Helper()
	var conf map[string]any
	if err := json.Unmarshal(n.netconf(), &conf); err != nil {
		t.Fatal(err)
	}
	conf["prevResult"] = p.Result
	stdin, _ := json.Marshal(conf)
	out, err := harness.RunPlugin(t, "dhcp", map[string]string{"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": p.ID, "CNI_NETNS": p.NS.Path, "CNI_IFNAME": "eth0"}, stdin)
	if err != nil {
		return err
	}
	if len(out) != 0 {
		t.Errorf("CHECK printed %s", out)
	}
	return nil
}

// TestDHCPGC: GC releases the leases of attachments that are no longer valid.
func TestDHCPGC(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp")
	n := newDHCPNet(t, d.DHCPSocket())
	rt := dhcpRuntime(t)
	a := addDHCPPod(t, rt, n)
	b := addDHCPPod(t, rt, n)
	// The runtime's GC reaches dhcp through macvlan's GC (without libcni's DELs of its cached
	// attachments: the plugins alone must find what is not valid).
	if err := rt.GCOnly(t, n.conflist(), []types.GCAttachment{{ContainerID: a.ID, IfName: "eth0"}}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	waitReleased(t, n, b.Addr)
	requireServerLease(t, n, a)
	// DEL after the pod's namespace is gone (its interface with it) succeeds, twice.
	a.NS.Delete(t)
	for i := range 2 {
		if err := rt.Del(t, n.conflist(), a.ID, a.NS.Path, "eth0", nil); err != nil {
			t.Errorf("DEL #%d with the namespace gone: %v", i+1, err)
		}
	}
	if err := rt.Status(t, n.conflist()); err != nil {
		t.Errorf("STATUS: %v", err)
	}
}

// TestDHCPSocketActivation: given a listening socket as systemd passes one (LISTEN_PID, LISTEN_FDS=1,
// descriptor 3), the daemon serves on it and does not create -socketpath.
func TestDHCPSocketActivation(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "activated.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	f, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // the daemon holds the descriptor now
	unused := filepath.Join(dir, "unused.sock")
	// sh's PID is the daemon's once it execs: that is LISTEN_PID.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" daemon -socketpath "$1"`, filepath.Join(harness.PluginDir(t), "dhcp"), unused)
	cmd.ExtraFiles = []*os.File{f}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	harness.WaitUntil(t, 10*time.Second, "the daemon answers on the passed socket", func() (bool, string) {
		err := dhcp.Ping(sock)
		return err == nil, errString(err)
	})
	if _, err := os.Stat(unused); !os.IsNotExist(err) {
		t.Errorf("-socketpath %s was created under socket activation: %v", unused, err)
	}
}

// TestDHCPBadInput: a missing daemon, a bad option, and a LAN without a server each fail with a coded
// error that says what to do; DEL with no daemon succeeds; a failed ADD leaves nothing in the pod.
func TestDHCPBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	pod := harness.NewNetNS(t, "dhbad")
	missing := filepath.Join(t.TempDir(), "no-daemon.sock")
	n := &dhcpNet{Name: harness.Unique("dhnet"), Socket: missing}
	env := func(cmd string) map[string]string {
		return map[string]string{"CNI_COMMAND": cmd, "CNI_CONTAINERID": "ctr-dhcp-bad", "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
	}
	for _, c := range []struct {
		name, cmd string
		conf      []byte
		code      uint
		naming    []string
	}{
		{"ADD without a daemon", "ADD", n.netconf(), 11, []string{missing, "dhcp daemon"}},
		{"STATUS without a daemon", "STATUS", n.netconf(), 50, []string{missing, "dhcp daemon"}},
		{"unknown option", "ADD", []byte(`{"cniVersion":"1.1.0","name":"x","type":"dhcp","ipam":{"type":"dhcp","provide":[{"option":"colour","value":"x"}]}}`), 7, []string{"ipam.provide[0].option", "colour"}},
		{"no ipam", "ADD", []byte(`{"cniVersion":"1.1.0","name":"x","type":"dhcp"}`), 7, []string{"ipam"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := harness.RunPlugin(t, "dhcp", env(c.cmd), c.conf)
			if err == nil {
				t.Fatalf("succeeded: %s", out)
			}
			var e types.Error
			if jerr := json.Unmarshal(out, &e); jerr != nil {
				t.Fatalf("stdout %q is not a CNI error: %v", out, jerr)
			}
			if e.Code != c.code {
				t.Errorf("code %d, want %d: %s", e.Code, c.code, e.Msg)
			}
			for _, s := range c.naming {
				if !strings.Contains(e.Msg, s) {
					t.Errorf("message %q does not name %q", e.Msg, s)
				}
			}
		})
	}
	if out, err := harness.RunPlugin(t, "dhcp", env("DEL"), n.netconf()); err != nil {
		t.Errorf("DEL without a daemon: %v: %s", err, out)
	}

	// A LAN whose server is gone: ADD gives up after the daemon's -resendtimeout with code 11. The pod's
	// link is made here as a main plugin would before calling its IPAM.
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp", "-timeout", "1s", "-resendtimeout", "4s")
	silent := newDHCPNet(t, d.DHCPSocket())
	silent.LAN.Dnsmasq.Stop(t)
	link := harness.Unique("nldmv")
	if out, err := exec.Command("ip", "link", "add", "link", silent.LAN.Master, "name", link, "type", "macvlan", "mode", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("create macvlan: %v: %s", err, out)
	}
	harness.RemoveLinkOnCleanup(t, link)
	if out, err := exec.Command("ip", "link", "set", link, "netns", pod.Name, "name", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("move macvlan into the pod: %v: %s", err, out)
	}
	penv := map[string]string{"CNI_CONTAINERID": "ctr-dhcp-silent", "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
	start := time.Now()
	penv["CNI_COMMAND"] = "ADD"
	out, err := harness.RunPlugin(t, "dhcp", penv, silent.ipamConf())
	var e types.Error
	if err == nil || json.Unmarshal(out, &e) != nil {
		t.Fatalf("ADD with no DHCP server: %v: %s", err, out)
	}
	if e.Code != 11 || !strings.Contains(e.Msg, "no DHCP server answered") || !strings.Contains(e.Msg, "-resendtimeout") {
		t.Errorf("ADD with no DHCP server: code %d %q, want code 11 saying no server answered within -resendtimeout", e.Code, e.Msg)
	}
	t.Logf("ADD with no DHCP server failed after %v (-resendtimeout 4s)", time.Since(start).Round(100*time.Millisecond))
	penv["CNI_COMMAND"] = "DEL"
	if out, err := harness.RunPlugin(t, "dhcp", penv, silent.ipamConf()); err != nil {
		t.Errorf("DEL after the failed ADD: %v: %s", err, out)
	}
}

// TestDHCPFaultPoints kills the dhcp plugin at each of its ADD's fault points (before the lease is taken,
// and after it is taken but before the result is printed); the runtime's DEL must leave no lease at the
// server and no interface in the pod. Not parallel: NETLOOM_FAULT_POINT reaches the plugins through
// this process's environment.
func TestDHCPFaultPoints(t *testing.T) {
	harness.RequireRoot(t)
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp")
	n := newDHCPNet(t, d.DHCPSocket())
	rt := dhcpRuntime(t)
	list := n.conflist()
	leftovers := func(t *testing.T, id string, pod harness.NetNS) []string {
		var out []string
		want := dhcp.ClientID(id, n.Name, "eth0")
		for _, l := range n.LAN.Leases(t) {
			if l.ClientID == want {
				out = append(out, "dnsmasq lease "+l.Addr.String())
			}
		}
		if err := pod.Do(func() error { _, err := netlink.LinkByName("eth0"); return err }); err == nil {
			out = append(out, "eth0 in "+pod.Name)
		}
		return out
	}
	// macvlan's steps around the lease: killed after the link exists but before the lease, and after
	// the lease but before the addresses, the runtime's DEL must still release through the link.
	points := append(stepPoints("macvlan", "create", "allocate", "configure"), "dhcp:lease", "dhcp:done")
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			id := "ctr-fault-" + strings.ReplaceAll(point, ":", "-")
			pod := harness.NewNetNS(t, "dhflt")
			t.Setenv(fault.Env, point)
			_, err := rt.Add(t, list, id, pod.Path, "eth0", nil)
			if err := os.Unsetenv(fault.Env); err != nil {
				t.Fatal(err)
			}
			if err == nil || !strings.Contains(err.Error(), "signal: killed") {
				t.Errorf("ADD with %s=%s: %v, want the plugin killed", fault.Env, point, err)
			}
			t.Logf("%s: the kill left %v", point, leftovers(t, id, pod))
			if err := rt.Del(t, list, id, pod.Path, "eth0", nil); err != nil {
				t.Errorf("DEL after the kill: %v", err)
			}
			harness.WaitUntil(t, 10*time.Second, "nothing left", func() (bool, string) {
				l := leftovers(t, id, pod)
				return len(l) == 0, strings.Join(l, ", ")
			})
		})
	}
	p := addDHCPPod(t, rt, n)
	delReleased(t, rt, n, p)
}

// TestDHCPBridge: netloom's bridge creates the pod's veth on a bridge that has the LAN as a port before
// it calls dhcp, so the exchange runs through the bridge; DEL releases before it removes the veth, so
// the release reaches the server.
func TestDHCPBridge(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp")
	n := newDHCPNet(t, d.DHCPSocket())
	n.onBridge(t)
	rt := dhcpRuntime(t)
	p := addDHCPPod(t, rt, n)
	requireServerLease(t, n, p)
	if len(p.Result.Interfaces) != 3 || p.Result.Interfaces[0].Name != n.Bridge {
		t.Errorf("result interfaces %+v: want the bridge %s, the host veth and eth0", p.Result.Interfaces, n.Bridge)
	}
	if err := harness.Ping(t, p.NS, n.LAN.Server.String()); err != nil {
		t.Errorf("ping the DHCP server from the pod through the bridge: %v", err)
	}
	if err := rt.Check(t, n.conflist(), p.ID, p.NS.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	delReleased(t, rt, n, p)
}

// TestDHCPUnderReferenceMacvlan: the reference macvlan as the main plugin, netloom's dhcp plugin and
// daemon as its IPAM: a node that replaced only some binaries.
func TestDHCPUnderReferenceMacvlan(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp")
	n := newDHCPNet(t, d.DHCPSocket())
	rt := dhcpRuntime(t, harness.ReferencePlugin(t, "macvlan"))
	p := addDHCPPod(t, rt, n)
	requireServerLease(t, n, p)
	if err := harness.Ping(t, p.NS, n.LAN.Server.String()); err != nil {
		t.Errorf("ping the DHCP server from the pod: %v", err)
	}
	if err := rt.Check(t, n.conflist(), p.ID, p.NS.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	delReleased(t, rt, n, p)
}

// TestDHCPLeaseExpiry: the server goes away after the ADD; the daemon tries to renew at T1 and to rebind
// at T2, and when the lease expires it sets the pod's interface down (the address is no longer the
// pod's to use), as the reference does.
func TestDHCPLeaseExpiry(t *testing.T) {
	harness.RequireRoot(t)
	if testing.Short() {
		t.Skip("waits two minutes for the lease to expire")
	}
	t.Parallel()
	node := harness.NewNetNS(t, "dhnode")
	d := harness.StartDHCPDaemon(t, node, "dhcp", "-timeout", "2s", "-resendtimeout", "10s")
	n := newDHCPNet(t, d.DHCPSocket())
	rt := dhcpRuntime(t)
	start := time.Now()
	p := addDHCPPod(t, rt, n)
	n.LAN.Dnsmasq.Stop(t)
	harness.WaitUntil(t, harness.DHCPLANLease+30*time.Second, "the pod's eth0 goes down", func() (bool, string) {
		out, err := p.NS.Exec("ip", "-o", "link", "show", "eth0")
		return err == nil && !strings.Contains(out, ",UP") && !strings.Contains(out, "<UP"), out
	})
	t.Logf("eth0 down %v after ADD (lease %v)", time.Since(start).Round(time.Second), harness.DHCPLANLease)
	if took := time.Since(start); took < harness.DHCPLANLease-5*time.Second {
		t.Errorf("eth0 went down after %v, before the lease expired", took)
	}
	log, err := os.ReadFile(d.Logs()[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"renewing:", "rebinding:", "lease expired"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("daemon log lacks %q:\n%s", want, log)
		}
	}
	// DEL of an expired lease succeeds (nothing to release), twice.
	for i := range 2 {
		if err := rt.Del(t, n.conflist(), p.ID, p.NS.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
}
