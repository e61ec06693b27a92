package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/test/harness"
)

// IPv6 duplicate address detection on the stacked links (macvlan, ipvlan), whose pods share the
// master's LAN with hosts that IPAM knows nothing of. The LAN is the master's veth and its far end in
// a peer namespace: the other host. The pods' addresses are IPv6 only, from fd00:dad:<kind>:<x>::/64,
// leased from ::10 up; the peer holds ::2.

// dadLAN is one macvlan or ipvlan network with the IPv6 range of these tests.
type dadLAN struct {
	kind    string // "macvlan" or "ipvlan"
	name    string
	master  string
	peer    harness.NetNS
	peerIf  string
	dataDir string
	subnet  netip.Prefix
	conf    []byte
	v4      string // the IPv4 subnet of a dual-stack network ("": IPv6 only)
}

func (d *dadLAN) addr(host int) netip.Addr {
	a := d.subnet.Addr().As16()
	a[15] = byte(host)
	return netip.AddrFrom16(a)
}

// newDADLAN makes the network: kind's plugin (mode bridge for macvlan, l2 for ipvlan: both put the
// pods on the master's segment) with a host-local IPv6 range, and the peer's ::2 (held without DAD).
func newDADLAN(t *testing.T, kind string) *dadLAN { return newDADLANStacks(t, kind, false) }

// newDADLANStacks is newDADLAN with, when dual is set, an IPv4 range too: the master's segment's,
// from .10 up (macvlan only).
func newDADLANStacks(t *testing.T, kind string, dual bool) *dadLAN {
	t.Helper()
	d := &dadLAN{kind: kind}
	var x int
	var plugin map[string]any
	switch kind {
	case "macvlan":
		m := newMacvlanNet(t, "bridge")
		d.name, d.master, d.peer, d.peerIf, d.dataDir, x = m.Name, m.Master, m.Peer, m.PeerIf, m.DataDir, m.x
		d.subnet = netip.MustParsePrefix(fmt.Sprintf("fd00:dad:1:%x::/64", x))
		plugin = m.plugin()
	case "ipvlan":
		v := newIpvlanNet(t, "l2")
		d.name, d.master, d.peer, d.dataDir, x = v.Name, v.Master, v.Peer, v.DataDir, v.x
		d.peerIf = peerLink(t, v.Peer)
		d.subnet = netip.MustParsePrefix(fmt.Sprintf("fd00:dad:2:%x::/64", x))
		plugin = v.plugin()
	default:
		t.Fatalf("no DAD LAN for %q", kind)
	}
	ranges := []any{[]any{map[string]string{
		"subnet": d.subnet.String(), "rangeStart": d.addr(0x10).String(), "rangeEnd": d.addr(0x50).String(),
	}}}
	if dual {
		d.v4 = fmt.Sprintf("10.220.%d", x)
		ranges = append(ranges, []any{map[string]string{"subnet": d.v4 + ".0/24", "rangeStart": d.v4 + ".10", "rangeEnd": d.v4 + ".50"}})
	}
	plugin["ipam"] = map[string]any{"type": "host-local", "dataDir": d.dataDir, "ranges": ranges}
	delete(plugin, "capabilities")
	d.conf, _ = json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": d.name, "plugins": []any{plugin}})
	d.hold(t, 2)
	return d
}

// peerLink is the name of the peer namespace's end of its veth to the master.
func peerLink(t *testing.T, peer harness.NetNS) string {
	t.Helper()
	var name string
	err := peer.Do(func() error {
		ls, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range ls {
			if l.Type() == "veth" {
				name = l.Attrs().Name
			}
		}
		return nil
	})
	if err != nil || name == "" {
		t.Fatalf("peer %s: no veth (%v)", peer.Name, err)
	}
	return name
}

// hold puts ::host on the peer, as a host that has it already: without DAD.
func (d *dadLAN) hold(t *testing.T, host int) {
	t.Helper()
	d.peer.Run(t, "ip", "addr", "add", netip.PrefixFrom(d.addr(host), 64).String(), "dev", d.peerIf, "nodad")
}

// podV6 returns the flags of the pod's eth0's address a; ok is false when eth0 does not carry it.
func podV6(t *testing.T, pod harness.NetNS, a netip.Addr) (flags int, ok bool) {
	t.Helper()
	err := pod.Do(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, x := range as {
			if x.IP.Equal(a.AsSlice()) {
				flags, ok = x.Flags, true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("addresses of eth0 in %s: %v", pod.Name, err)
	}
	return flags, ok
}

// pingAtOnce pings to from from with one echo, waiting up to two seconds for the reply.
func pingAtOnce(from harness.NetNS, to netip.Addr) (time.Duration, error) {
	t0 := time.Now()
	out, err := from.Exec("ping", "-6", "-c1", "-W2", to.String())
	if err != nil {
		return time.Since(t0), fmt.Errorf("ping %s from %s: %v: %s", to, from.Name, err, out)
	}
	return time.Since(t0), nil
}

// dadProbes is how many probes the pods' DAD sends in the tests that need it to run a while: one a
// second, so DAD lasts that many seconds, long enough for a slow machine (the VM lane) to do
// something while it runs. The pod's interface takes its namespace's default.
const dadProbes = "5"

func slowDAD(t *testing.T, pod harness.NetNS) {
	t.Helper()
	pod.Run(t, "sysctl", "-qw", "net.ipv6.conf.default.dad_transmits="+dadProbes)
}

// dadNothingLeft fails t when the pod still has eth0 or the network a lease.
func (d *dadLAN) nothingLeft(t *testing.T, pod harness.NetNS) {
	t.Helper()
	if _, err := pod.Exec("ip", "link", "show", "eth0"); err == nil {
		t.Errorf("%s: eth0 is still in the pod", d.kind)
	}
	if l := harness.Leases(t, d.dataDir, d.name); len(l) > 0 {
		t.Errorf("%s: leases left: %v", d.kind, l)
	}
}

// testDADUsableAtOnce: without a duplicate, the pod's address answers and sends while DAD still runs
// (ping both ways right after ADD, the address still optimistic after), DAD is on for it (accept_dad
// 1, optimistic) and concludes; CHECK passes; DEL twice leaves nothing.
func testDADUsableAtOnce(t *testing.T, kind string) {
	d := newDADLAN(t, kind)
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "dadpod")
	slowDAD(t, pod)
	id := harness.Unique("ctr")
	t.Cleanup(func() { _ = rt.Del(t, d.conf, id, pod.Path, "eth0", nil) })
	r, err := rt.Add(t, d.conf, id, pod.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	mine := d.addr(0x10)
	if addrs := podAddrs(t, r); len(addrs) != 1 || addrs[0].Addr() != mine {
		t.Fatalf("ADD result addresses %v, want %s", addrs, mine)
	}
	out, err := pingAtOnce(pod, d.addr(2))
	if err != nil {
		t.Fatalf("pod to the LAN host right after ADD: %v", err)
	}
	in, err := pingAtOnce(d.peer, mine)
	if err != nil {
		t.Fatalf("LAN host to the pod right after ADD: %v", err)
	}
	t.Logf("%s: ping right after ADD: pod->host %v, host->pod %v", kind, out, in)
	if f, ok := podV6(t, pod, mine); !ok || f&unix.IFA_F_OPTIMISTIC == 0 {
		t.Errorf("address %s after the pings: flags %#x, want still optimistic (DAD running): the pings did not prove it usable during DAD", mine, f)
	}
	for key, want := range map[string]string{"accept_dad": "1", "optimistic_dad": "1", "use_optimistic": "1"} {
		if got := strings.TrimSpace(pod.Run(t, "sysctl", "-n", "net.ipv6.conf.eth0."+key)); got != want {
			t.Errorf("pod eth0 %s = %s, want %s", key, got, want)
		}
	}
	// DAD ends after the probes and a second without an answer each: the address is then plain.
	var flags int
	harness.WaitUntil(t, 15*time.Second, "DAD to conclude", func() (bool, string) {
		f, ok := podV6(t, pod, mine)
		flags = f
		return ok && f&(unix.IFA_F_TENTATIVE|unix.IFA_F_OPTIMISTIC|unix.IFA_F_DADFAILED) == 0, fmt.Sprintf("flags %#x", f)
	})
	if flags&unix.IFA_F_NODAD != 0 {
		t.Errorf("address %s has nodad: DAD did not run", mine)
	}
	if err := rt.Check(t, d.conf, id, pod.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	for i := range 2 {
		if err := rt.Del(t, d.conf, id, pod.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
	}
	d.nothingLeft(t, pod)
}

// testDADDuplicateFailsADD: the LAN host already holds the address host-local hands out first. ADD
// fails with code 7 naming "ipam", the address and the master, and leaves nothing (link gone, lease
// released); the host keeps its address, untouched. The next ADD gets the next address and works.
func testDADDuplicateFailsADD(t *testing.T, kind string) {
	d := newDADLAN(t, kind)
	taken := d.addr(0x10)
	d.hold(t, 0x10)
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "dadpod")
	id := harness.Unique("ctr")
	t0 := time.Now()
	_, err := rt.Add(t, d.conf, id, pod.Path, "eth0", nil)
	took := time.Since(t0)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != conf.CodeInvalidConfig || !strings.HasPrefix(te.Msg, "ipam: ") ||
		!strings.Contains(te.Msg, taken.String()) || !strings.Contains(te.Msg, d.master) {
		_ = rt.Del(t, d.conf, id, pod.Path, "eth0", nil)
		t.Fatalf("ADD of a pod whose address %s a LAN host holds: %v, want code 7 naming ipam, the address and master %q", taken, err, d.master)
	}
	t.Logf("%s: ADD failed after %v: %v", kind, took, err)
	d.nothingLeft(t, pod)
	if out := d.peer.Run(t, "ip", "-6", "addr", "show", "dev", d.peerIf); strings.Contains(out, "dadfailed") || !strings.Contains(out, taken.String()) {
		t.Errorf("the LAN host lost or failed its address %s:\n%s", taken, out)
	}

	id2 := harness.Unique("ctr")
	t.Cleanup(func() { _ = rt.Del(t, d.conf, id2, pod.Path, "eth0", nil) })
	r, err := rt.Add(t, d.conf, id2, pod.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD after the failed one: %v", err)
	}
	next := podAddrs(t, r)
	if len(next) != 1 || next[0].Addr() == taken {
		t.Fatalf("ADD after the failed one got %v, want the next free address", next)
	}
	if _, err := pingAtOnce(pod, d.addr(2)); err != nil {
		t.Errorf("pod with %s to the LAN host: %v", next[0], err)
	}
	for i := range 2 {
		if err := rt.Del(t, d.conf, id2, pod.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
	}
	d.nothingLeft(t, pod)
}

// testDADLateClaimFailsCHECK: a node that claims the pod's address while the pod's DAD still runs (it
// probes for the address itself) wins it: the kernel marks the pod's address dadfailed, and CHECK
// fails naming it, so a runtime that checks learns the pod lost its address. DEL still cleans up.
func testDADLateClaimFailsCHECK(t *testing.T, kind string) {
	d := newDADLAN(t, kind)
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "dadpod")
	slowDAD(t, pod) // the claim below must come while the pod's DAD runs
	id := harness.Unique("ctr")
	t.Cleanup(func() { _ = rt.Del(t, d.conf, id, pod.Path, "eth0", nil) })
	if _, err := rt.Add(t, d.conf, id, pod.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	mine := d.addr(0x10)
	// The peer probes at once (optimistic) instead of after a random delay of up to a second.
	d.peer.Run(t, "sysctl", "-qw", "net.ipv6.conf."+d.peerIf+".accept_dad=1", "net.ipv6.conf."+d.peerIf+".optimistic_dad=1")
	d.peer.Run(t, "ip", "addr", "add", netip.PrefixFrom(mine, 64).String(), "dev", d.peerIf, "optimistic")
	harness.WaitUntil(t, 5*time.Second, "the pod's address to go dadfailed", func() (bool, string) {
		f, ok := podV6(t, pod, mine)
		return ok && f&unix.IFA_F_DADFAILED != 0, fmt.Sprintf("flags %#x", f)
	})
	err := rt.Check(t, d.conf, id, pod.Path, "eth0", nil)
	if err == nil || !strings.Contains(err.Error(), mine.String()) || !strings.Contains(err.Error(), "in use by another node") {
		t.Errorf("CHECK of a pod whose address went dadfailed: %v, want an error naming %s", err, mine)
	}
	for i := range 2 {
		if err := rt.Del(t, d.conf, id, pod.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
	}
	d.nothingLeft(t, pod)
}

func TestMacvlanDADUsableAtOnce(t *testing.T) {
	harness.RequireRoot(t)
	testDADUsableAtOnce(t, "macvlan")
}

func TestMacvlanDADDuplicateFailsADD(t *testing.T) {
	harness.RequireRoot(t)
	testDADDuplicateFailsADD(t, "macvlan")
}

func TestMacvlanDADLateClaimFailsCHECK(t *testing.T) {
	harness.RequireRoot(t)
	testDADLateClaimFailsCHECK(t, "macvlan")
}

// A dual-stack pod: the IPv4 address is on the link when it comes up, so arp_notify announces it (a
// neighbour accepting gratuitous ARP learns the pod's MAC before any traffic), while the IPv6 one is
// optimistic; both carry traffic at once.
func TestMacvlanDADDualStack(t *testing.T) {
	harness.RequireRoot(t)
	d := newDADLANStacks(t, "macvlan", true)
	d.peer.Run(t, "sysctl", "-qw", "net.ipv4.conf."+d.peerIf+".arp_accept=1")
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "dadpod")
	slowDAD(t, pod)
	id := harness.Unique("ctr")
	t.Cleanup(func() { _ = rt.Del(t, d.conf, id, pod.Path, "eth0", nil) })
	r, err := rt.Add(t, d.conf, id, pod.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	mac := podLink(t, pod).Attrs().HardwareAddr.String()
	v4 := d.v4 + ".10"
	if out := d.peer.Run(t, "ip", "neigh", "show", v4, "dev", d.peerIf); !strings.Contains(out, mac) {
		t.Errorf("peer did not learn %s at %s from a gratuitous ARP: %q", v4, mac, out)
	}
	if addrs := podAddrs(t, r); len(addrs) != 2 {
		t.Fatalf("ADD result addresses %v, want an IPv6 and an IPv4 one", addrs)
	}
	if err := harness.Ping(t, pod, d.v4+".2"); err != nil {
		t.Errorf("IPv4 to the LAN host: %v", err)
	}
	if _, err := pingAtOnce(pod, d.addr(2)); err != nil {
		t.Errorf("IPv6 to the LAN host: %v", err)
	}
	if f, ok := podV6(t, pod, d.addr(0x10)); !ok || f&unix.IFA_F_OPTIMISTIC == 0 {
		t.Errorf("IPv6 address flags %#x, want optimistic while DAD runs", f)
	}
	for i := range 2 {
		if err := rt.Del(t, d.conf, id, pod.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
	}
	d.nothingLeft(t, pod)
}

// A pod the reference macvlan made on an IPv6 LAN (DAD on, not optimistic, waited for: its address is
// plain by the time ADD returns) survives the switch: netloom's CHECK passes, and its DEL removes the
// link and the lease, twice.
func TestMacvlanDADReferencePodSurvivesSwitch(t *testing.T) {
	harness.RequireRoot(t)
	d := newDADLAN(t, "macvlan")
	// The node's plugin directory, holding the reference's binaries, then netloom's: one runtime (one
	// result cache) sees the switch as a node upgrade does.
	bin := t.TempDir()
	install := func(dirs map[string]string) {
		for name, dir := range dirs {
			_ = os.Remove(filepath.Join(bin, name))
			if err := os.Symlink(filepath.Join(dir, name), filepath.Join(bin, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(map[string]string{"macvlan": harness.ReferencePlugin(t, "macvlan"), "host-local": harness.ReferencePlugin(t, "host-local")})
	rt := harness.NewRuntimeWithPath(t, bin)
	pod := harness.NewNetNS(t, "dadpod")
	id := harness.Unique("ctr")
	t.Cleanup(func() { _ = rt.Del(t, d.conf, id, pod.Path, "eth0", nil) })
	if _, err := rt.Add(t, d.conf, id, pod.Path, "eth0", nil); err != nil {
		t.Fatalf("reference ADD: %v", err)
	}
	install(map[string]string{"macvlan": harness.PluginDir(t), "host-local": harness.PluginDir(t)})
	if err := rt.Check(t, d.conf, id, pod.Path, "eth0", nil); err != nil {
		t.Errorf("netloom CHECK of the reference's pod: %v", err)
	}
	if _, err := pingAtOnce(pod, d.addr(2)); err != nil {
		t.Errorf("reference's pod to the LAN host: %v", err)
	}
	for i := range 2 {
		if err := rt.Del(t, d.conf, id, pod.Path, "eth0", nil); err != nil {
			t.Fatalf("netloom DEL %d of the reference's pod: %v", i+1, err)
		}
	}
	d.nothingLeft(t, pod)
}

// The ipvlan ones run in the VM lane (their names contain "Ipvlan"): this kernel has no ipvlan.

func requireIpvlan(t *testing.T) {
	t.Helper()
	harness.RequireKernelFeature(t, "ipvlan", ipvlanAvailable(t))
}

func TestIpvlanDADUsableAtOnce(t *testing.T) {
	requireIpvlan(t)
	testDADUsableAtOnce(t, "ipvlan")
}

func TestIpvlanDADDuplicateFailsADD(t *testing.T) {
	requireIpvlan(t)
	testDADDuplicateFailsADD(t, "ipvlan")
}

func TestIpvlanDADLateClaimFailsCHECK(t *testing.T) {
	requireIpvlan(t)
	testDADLateClaimFailsCHECK(t, "ipvlan")
}
