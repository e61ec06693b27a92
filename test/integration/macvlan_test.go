package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

// macvlanNet is one test network: a master (the host end of a veth whose far end, in a peer namespace,
// is a second machine on the master's segment), a test-only subnet 10.220.x.0/24 shared by the peer
// and the pods, and a private host-local dataDir.
type macvlanNet struct {
	Name, Master, DataDir string
	Mode                  string
	Peer                  harness.NetNS
	PeerIf                string
	x                     int
	Extra                 map[string]any // more macvlan keys; a nil value deletes a key
}

var macvlanSeq struct {
	sync.Mutex
	n int
}

// The host's address on the master is .1, the peer's .2; pods get .10 and up.
func newMacvlanNet(t *testing.T, mode string) *macvlanNet {
	t.Helper()
	macvlanSeq.Lock()
	macvlanSeq.n++
	x := macvlanSeq.n
	macvlanSeq.Unlock()
	peer := harness.NewNetNS(t, "mvpeer")
	w := harness.ConnectToHost(t, peer, fmt.Sprintf("10.220.%d.1/24", x), fmt.Sprintf("10.220.%d.2/24", x))
	return &macvlanNet{Name: harness.Unique("mvnet"), Master: w.Host, DataDir: t.TempDir(), Mode: mode, Peer: peer, PeerIf: w.Peer, x: x, Extra: map[string]any{}}
}

func (m *macvlanNet) addr(host int) string { return fmt.Sprintf("10.220.%d.%d", m.x, host) }

func (m *macvlanNet) plugin() map[string]any {
	p := map[string]any{
		"type":         "macvlan",
		"master":       m.Master,
		"mode":         m.Mode,
		"capabilities": map[string]bool{"mac": true},
		"ipam": map[string]any{"type": "host-local", "dataDir": m.DataDir, "ranges": []any{[]any{map[string]string{
			"subnet": fmt.Sprintf("10.220.%d.0/24", m.x), "rangeStart": m.addr(10), "rangeEnd": m.addr(50),
		}}}},
	}
	for k, v := range m.Extra {
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	return p
}

func (m *macvlanNet) conflist() []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": m.Name, "plugins": []any{m.plugin()}})
	return out
}

func (m *macvlanNet) netconf() []byte {
	p := m.plugin()
	p["cniVersion"], p["name"] = "1.1.0", m.Name
	out, _ := json.Marshal(p)
	return out
}

func (m *macvlanNet) leases(t *testing.T) []string { return harness.Leases(t, m.DataDir, m.Name) }

// macvlanPod is one attachment made through libcni.
type macvlanPod struct {
	NS     harness.NetNS
	ID     string
	Addr   string
	Result *current.Result
}

func addMacvlanPod(t *testing.T, rt *harness.Runtime, m *macvlanNet, capArgs map[string]any) macvlanPod {
	t.Helper()
	p := macvlanPod{NS: harness.NewNetNS(t, "mvpod"), ID: harness.Unique("ctr")}
	list := m.conflist()
	r, err := rt.Add(t, list, p.ID, p.NS.Path, "eth0", capArgs)
	if err != nil {
		t.Fatalf("ADD %s: %v", p.ID, err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, p.ID, p.NS.Path, "eth0", capArgs) })
	if p.Result, err = current.NewResultFromResult(r); err != nil {
		t.Fatal(err)
	}
	if addrs := podAddrs(t, r); len(addrs) == 1 {
		p.Addr = addrs[0].Addr().String()
	} else {
		t.Fatalf("ADD %s: want one address, got %v", p.ID, addrs)
	}
	return p
}

// podLink returns the pod's eth0 as the kernel sees it.
func podLink(t *testing.T, n harness.NetNS) netlink.Link {
	t.Helper()
	var l netlink.Link
	if err := n.Do(func() error {
		var err error
		l, err = netlink.LinkByName("eth0")
		return err
	}); err != nil {
		t.Fatalf("eth0 in %s: %v", n.Name, err)
	}
	return l
}

func TestMacvlanBridgeModeTwoPodsPing(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	m := newMacvlanNet(t, "bridge")
	rt := harness.NewRuntime(t)
	const mac = "0a:58:0a:dc:00:42"
	a := addMacvlanPod(t, rt, m, map[string]any{"mac": mac})
	b := addMacvlanPod(t, rt, m, nil)

	// The result: one interface, the pod's, in its sandbox; the IP points at it.
	if len(a.Result.Interfaces) != 1 || a.Result.Interfaces[0].Sandbox != a.NS.Path || a.Result.Interfaces[0].Mac != mac {
		t.Errorf("interfaces = %+v", a.Result.Interfaces)
	}
	if ipc := a.Result.IPs[0]; ipc.Interface == nil || *ipc.Interface != 0 {
		t.Errorf("IP %v does not point at interface 0", ipc)
	}
	master, err := netlink.LinkByName(m.Master)
	if err != nil {
		t.Fatal(err)
	}
	la := podLink(t, a.NS)
	mv, ok := la.(*netlink.Macvlan)
	if !ok {
		t.Fatalf("pod interface is a %s", la.Type())
	}
	if mv.Mode != netlink.MACVLAN_MODE_BRIDGE || mv.ParentIndex != master.Attrs().Index || mv.HardwareAddr.String() != mac || mv.MTU != master.Attrs().MTU {
		t.Errorf("macvlan: mode %v parent %d (master %d) mac %s mtu %d (master %d)", mv.Mode, mv.ParentIndex, master.Attrs().Index, mv.HardwareAddr, mv.MTU, master.Attrs().MTU)
	}
	// No temporary name left anywhere.
	if out := a.NS.Run(t, "ip", "-o", "link", "show"); strings.Contains(out, "nltmp") {
		t.Errorf("temporary link name left: %s", out)
	}

	for _, c := range []struct {
		from harness.NetNS
		to   string
	}{{a.NS, b.Addr}, {b.NS, a.Addr}, {a.NS, m.addr(2)}, {b.NS, m.addr(2)}, {m.Peer, a.Addr}} {
		if err := harness.Ping(t, c.from, c.to); err != nil {
			t.Errorf("ping %s from %s: %v", c.to, c.from.Name, err)
		}
	}

	list := m.conflist()
	for _, p := range []macvlanPod{a, b} {
		if err := rt.Check(t, list, p.ID, p.NS.Path, "eth0", nil); err != nil {
			t.Errorf("CHECK %s: %v", p.ID, err)
		}
	}
	// CHECK against a config that says another mode fails, naming the mode.
	m.Mode = "private"
	if err := rt.Check(t, m.conflist(), a.ID, a.NS.Path, "eth0", nil); err == nil || !strings.Contains(err.Error(), "mode") {
		t.Errorf("CHECK with mode private on a bridge-mode pod: %v", err)
	}
	m.Mode = "bridge"

	// DEL twice: the link and the lease go, the second DEL is a no-op.
	for i := range 2 {
		if err := rt.Del(t, list, a.ID, a.NS.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	if err := a.NS.Do(func() error { _, err := netlink.LinkByName("eth0"); return err }); err == nil {
		t.Error("eth0 still in the pod after DEL")
	}
	if l := m.leases(t); len(l) != 1 || l[0] != b.Addr {
		t.Errorf("leases after DEL of a = %v, want only %s", l, b.Addr)
	}
}

func TestMacvlanPrivateModeIsolatesPods(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	m := newMacvlanNet(t, "private")
	rt := harness.NewRuntime(t)
	a := addMacvlanPod(t, rt, m, nil)
	b := addMacvlanPod(t, rt, m, nil)
	if mv, ok := podLink(t, a.NS).(*netlink.Macvlan); !ok || mv.Mode != netlink.MACVLAN_MODE_PRIVATE {
		t.Fatalf("pod interface is not a private macvlan: %+v", podLink(t, a.NS))
	}
	for _, p := range []macvlanPod{a, b} {
		if err := harness.Ping(t, p.NS, m.addr(2)); err != nil {
			t.Errorf("pod %s cannot reach the peer: %v", p.Addr, err)
		}
	}
	if err := harness.Ping(t, a.NS, b.Addr); err == nil {
		t.Error("private mode: pod a reached pod b")
	}
	if err := harness.Ping(t, b.NS, a.Addr); err == nil {
		t.Error("private mode: pod b reached pod a")
	}
	if err := rt.Check(t, m.conflist(), a.ID, a.NS.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
}

// The documented macvlan limitation: the node cannot reach its own pods over the master (its frames go
// to the wire, not up into the macvlans), while a peer on the segment can.
func TestMacvlanHostCannotReachPod(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	m := newMacvlanNet(t, "bridge")
	rt := harness.NewRuntime(t)
	p := addMacvlanPod(t, rt, m, nil)
	if err := harness.Ping(t, m.Peer, p.Addr); err != nil {
		t.Fatalf("peer cannot reach the pod: %v", err)
	}
	// -I: out of the master, whatever else routes 10.220.0.0/16 on this node.
	if out, err := exec.Command("ping", "-c1", "-W1", "-I", m.Master, p.Addr).CombinedOutput(); err == nil {
		t.Errorf("the host reached its own macvlan pod %s over master %s; macvlan should not allow it: %s", p.Addr, m.Master, out)
	}
	if err := harness.Ping(t, p.NS, m.addr(1)); err == nil {
		t.Errorf("the pod reached the host's own address %s on the master", m.addr(1))
	}
}

// The kernel announces the pod's address (gratuitous ARP from arp_notify) as the link comes up: a
// neighbour that accepts gratuitous ARP learns the pod's MAC before any traffic.
func TestMacvlanAnnouncesAddress(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	m := newMacvlanNet(t, "bridge")
	m.Peer.Run(t, "sysctl", "-qw", "net.ipv4.conf."+m.PeerIf+".arp_accept=1")
	rt := harness.NewRuntime(t)
	p := addMacvlanPod(t, rt, m, nil)
	out := m.Peer.Run(t, "ip", "neigh", "show", p.Addr, "dev", m.PeerIf)
	if !strings.Contains(out, p.Result.Interfaces[0].Mac) {
		t.Errorf("peer did not learn %s at %s from a gratuitous ARP: %q", p.Addr, p.Result.Interfaces[0].Mac, out)
	}
}

func TestMacvlanL2OnlyAndMTU(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	m := newMacvlanNet(t, "vepa")
	m.Extra["ipam"] = nil
	m.Extra["mtu"] = 1400
	m.Extra["bcqueuelen"] = 100
	rt := harness.NewRuntime(t)
	n := harness.NewNetNS(t, "mvl2")
	list := m.conflist()
	r, err := rt.Add(t, list, "ctr-l2", n.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-l2", n.Path, "eth0", nil) })
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 0 || len(res.Interfaces) != 1 {
		t.Errorf("L2-only result: %+v", res)
	}
	mv, ok := podLink(t, n).(*netlink.Macvlan)
	if !ok {
		t.Fatal("pod interface is not a macvlan")
	}
	if mv.Mode != netlink.MACVLAN_MODE_VEPA || mv.MTU != 1400 || mv.Flags&net.FlagUp == 0 {
		t.Errorf("macvlan: mode %v mtu %d flags %v", mv.Mode, mv.MTU, mv.Flags)
	}
	if mv.BCQueueLen != 0 && mv.BCQueueLen != 100 {
		t.Errorf("bcqueuelen = %d, want 100", mv.BCQueueLen)
	}
	if err := rt.Check(t, list, "ctr-l2", n.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := rt.Del(t, list, "ctr-l2", n.Path, "eth0", nil); err != nil {
		t.Errorf("DEL: %v", err)
	}
}

func TestMacvlanDelAfterNetnsGone(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	m := newMacvlanNet(t, "bridge")
	rt := harness.NewRuntime(t)
	p := addMacvlanPod(t, rt, m, nil)
	p.NS.Delete(t)
	list := m.conflist()
	for i := range 2 {
		if err := rt.Del(t, list, p.ID, p.NS.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL #%d after the netns is gone: %v", i+1, err)
		}
	}
	if l := m.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
}

func TestMacvlanGCReleasesLeaked(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	m := newMacvlanNet(t, "bridge")
	rt := harness.NewRuntime(t)
	a := addMacvlanPod(t, rt, m, nil)
	b := addMacvlanPod(t, rt, m, nil)
	if err := rt.GCOnly(t, m.conflist(), []types.GCAttachment{{ContainerID: a.ID, IfName: "eth0"}}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if l := m.leases(t); len(l) != 1 || l[0] != a.Addr {
		t.Errorf("leases after GC = %v, want only %s (b's %s released)", l, a.Addr, b.Addr)
	}
}

func TestMacvlanStatus(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	m := newMacvlanNet(t, "bridge")
	status := func() ([]byte, error) {
		return harness.RunPlugin(t, "macvlan", map[string]string{"CNI_COMMAND": "STATUS"}, m.netconf())
	}
	if out, err := status(); err != nil {
		t.Fatalf("STATUS with the master up: %v: %s", err, out)
	}
	master, err := netlink.LinkByName(m.Master)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(master); err != nil {
		t.Fatal(err)
	}
	out, err := status()
	wantCNIError(t, out, err, 50, m.Master, "down")
	if err := netlink.LinkDel(master); err != nil {
		t.Fatal(err)
	}
	out, err = status()
	wantCNIError(t, out, err, 50, m.Master, "not found")
}

// Every bad input: a CNI error naming the key, a non-zero exit, and nothing left (no link, no lease).
func TestMacvlanBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	testStackedBadInput(t, "macvlan", func(t *testing.T) stackedNet { return newMacvlanNet(t, "bridge") }, []badInput{
		{name: "master does not exist", extra: map[string]any{"master": "nlnosuchmaster"}, code: 7, naming: []string{"master", "nlnosuchmaster"}, delOK: true},
		{name: "unknown mode", extra: map[string]any{"mode": "l3"}, code: 7, naming: []string{"mode", "l3"}},
		{name: "mtu above the master's", extra: map[string]any{"mtu": 9000}, code: 7, naming: []string{"mtu", "1500"}, delOK: true},
		{name: "mtu too small", extra: map[string]any{"mtu": 10}, code: 7, naming: []string{"mtu"}},
		{name: "bad mac", extra: map[string]any{"mac": "not-a-mac"}, code: 7, naming: []string{"mac"}},
		{name: "master in pod does not exist", extra: map[string]any{"linkInContainer": true}, code: 7, naming: []string{"master", "linkInContainer"}, delOK: true},
	})

	// CNI_IFNAME taken in the pod: a clear error, the existing interface untouched, the IP released.
	t.Run("ifname taken", func(t *testing.T) {
		t.Parallel()
		m := newMacvlanNet(t, "bridge")
		n := harness.NewNetNS(t, "mvbad")
		n.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
		env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-bad", "CNI_NETNS": n.Path, "CNI_IFNAME": "eth0"}
		out, err := harness.RunPlugin(t, "macvlan", env, m.netconf())
		if err == nil || !strings.Contains(string(out), "eth0") {
			t.Errorf("ADD onto an existing eth0: %v: %s", err, out)
		}
		if l := m.leases(t); len(l) != 0 {
			t.Errorf("leases left: %v", l)
		}
		if o := n.Run(t, "ip", "-o", "-d", "link", "show", "eth0"); !strings.Contains(o, "veth") {
			t.Errorf("existing eth0 changed: %s", o)
		}
	})
}

// linkInContainer: the master lives in the pod's namespace. Without "master" it is the interface of
// that namespace's default route, IPv4 or, when there is none, IPv6.
func TestMacvlanLinkInContainerDefaultMaster(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, family := range []string{"-4", "-6"} {
		t.Run(family, func(t *testing.T) {
			t.Parallel()
			n := harness.NewNetNS(t, "mvlic")
			n.Run(t, "ip", "link", "add", "mst0", "type", "veth", "peer", "name", "mst1")
			n.Run(t, "ip", "link", "set", "mst0", "up")
			n.Run(t, "ip", "link", "set", "mst1", "up")
			n.Run(t, "ip", family, "route", "add", "default", "dev", "mst0")
			conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"macvlan","linkInContainer":true}`, harness.Unique("mvnet")))
			env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-lic", "CNI_NETNS": n.Path, "CNI_IFNAME": "eth0"}
			if out, err := harness.RunPlugin(t, "macvlan", env, conf); err != nil {
				t.Fatalf("ADD: %v: %s", err, out)
			}
			var mst netlink.Link
			if err := n.Do(func() error {
				var err error
				mst, err = netlink.LinkByName("mst0")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if mv, ok := podLink(t, n).(*netlink.Macvlan); !ok || mv.ParentIndex != mst.Attrs().Index {
				t.Errorf("eth0 is not a macvlan on the pod's default-route interface mst0: %+v", podLink(t, n))
			}
			env["CNI_COMMAND"] = "DEL"
			if out, err := harness.RunPlugin(t, "macvlan", env, conf); err != nil {
				t.Fatalf("DEL: %v: %s", err, out)
			}
			if o := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(o, "eth0") {
				t.Errorf("eth0 left after DEL: %s", o)
			}
		})
	}
}

// Every mode the plugin accepts works on this kernel through ADD, CHECK and DEL (L2 only: a passthru
// macvlan takes over its master, so each mode gets its own).
func TestMacvlanEveryMode(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	modes := map[string]netlink.MacvlanMode{
		"bridge": netlink.MACVLAN_MODE_BRIDGE, "private": netlink.MACVLAN_MODE_PRIVATE, "vepa": netlink.MACVLAN_MODE_VEPA,
		"passthru": netlink.MACVLAN_MODE_PASSTHRU, "source": netlink.MACVLAN_MODE_SOURCE,
	}
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newMacvlanNet(t, name)
			m.Extra["ipam"] = nil
			rt := harness.NewRuntime(t)
			n := harness.NewNetNS(t, "mvmode")
			list := m.conflist()
			if _, err := rt.Add(t, list, "ctr-mode", n.Path, "eth0", nil); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { _ = rt.Del(t, list, "ctr-mode", n.Path, "eth0", nil) })
			if mv, ok := podLink(t, n).(*netlink.Macvlan); !ok || mv.Mode != mode {
				t.Errorf("pod interface: %+v, want a macvlan in mode %s", podLink(t, n), name)
			}
			if err := rt.Check(t, list, "ctr-mode", n.Path, "eth0", nil); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			if err := rt.Del(t, list, "ctr-mode", n.Path, "eth0", nil); err != nil {
				t.Errorf("DEL: %v", err)
			}
		})
	}
}
