package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

// This machine's kernel has no ipvlan: these tests skip here and run in the VM lane (test/vm), which
// boots a stock Debian kernel.

// ipvlanAvailable tells whether the kernel can make ipvlan links, by making one on a veth in a
// throwaway namespace.
func ipvlanAvailable(t *testing.T) bool {
	t.Helper()
	harness.RequireRoot(t)
	n := harness.NewNetNS(t, "ivprobe")
	defer n.Delete(t)
	n.Run(t, "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
	_, err := n.Exec("ip", "link", "add", "probeiv", "link", "probe0", "type", "ipvlan", "mode", "l2")
	return err == nil
}

// ipvlanNet is one test network: a master (the host end of a veth whose far end, in a peer namespace,
// is a second machine on the master's segment 10.222.x.0/24: the host .1, the peer .2), and a private
// host-local dataDir. In l2 mode the pods are on the master's segment (.10 and up); in l3 and l3s
// mode the master routes for them, so they get their own subnet 10.223.x.0/24 and the peer a route to
// it via the host's address on the master.
type ipvlanNet struct {
	Name, Master, DataDir string
	Mode                  string
	Peer                  harness.NetNS
	x                     int
	Extra                 map[string]any // more ipvlan keys; a nil value deletes a key
}

var ipvlanSeq struct {
	sync.Mutex
	n int
}

func newIpvlanNet(t *testing.T, mode string) *ipvlanNet {
	t.Helper()
	ipvlanSeq.Lock()
	ipvlanSeq.n++
	x := ipvlanSeq.n
	ipvlanSeq.Unlock()
	peer := harness.NewNetNS(t, "ivpeer")
	w := harness.ConnectToHost(t, peer, fmt.Sprintf("10.222.%d.1/24", x), fmt.Sprintf("10.222.%d.2/24", x))
	v := &ipvlanNet{Name: harness.Unique("ivnet"), Master: w.Host, DataDir: t.TempDir(), Mode: mode, Peer: peer, x: x, Extra: map[string]any{}}
	if v.routed() {
		peer.Run(t, "ip", "route", "add", v.podSubnet(), "via", v.segAddr(1))
	}
	return v
}

// routed: l3 and l3s, where the pods are not on the master's segment.
func (v *ipvlanNet) routed() bool { return v.Mode == "l3" || v.Mode == "l3s" }

func (v *ipvlanNet) segAddr(host int) string { return fmt.Sprintf("10.222.%d.%d", v.x, host) }

func (v *ipvlanNet) podSubnet() string {
	if v.routed() {
		return fmt.Sprintf("10.223.%d.0/24", v.x)
	}
	return fmt.Sprintf("10.222.%d.0/24", v.x)
}

func (v *ipvlanNet) podAddr(host int) string {
	if v.routed() {
		return fmt.Sprintf("10.223.%d.%d", v.x, host)
	}
	return v.segAddr(host)
}

func (v *ipvlanNet) plugin() map[string]any {
	rng := map[string]string{"subnet": v.podSubnet(), "rangeStart": v.podAddr(10), "rangeEnd": v.podAddr(50)}
	ipam := map[string]any{"type": "host-local", "dataDir": v.DataDir, "ranges": []any{[]any{rng}}}
	if v.routed() {
		// The pods reach the segment through the master, which routes for them.
		ipam["routes"] = []any{map[string]string{"dst": fmt.Sprintf("10.222.%d.0/24", v.x)}}
	}
	p := map[string]any{"type": "ipvlan", "master": v.Master, "mode": v.Mode, "ipam": ipam}
	for k, val := range v.Extra {
		if val == nil {
			delete(p, k)
		} else {
			p[k] = val
		}
	}
	return p
}

func (v *ipvlanNet) conflist() []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": v.Name, "plugins": []any{v.plugin()}})
	return out
}

func (v *ipvlanNet) netconf() []byte {
	p := v.plugin()
	p["cniVersion"], p["name"] = "1.1.0", v.Name
	out, _ := json.Marshal(p)
	return out
}

func (v *ipvlanNet) leases(t *testing.T) []string { return harness.Leases(t, v.DataDir, v.Name) }

// ipvlanPod is one attachment made through libcni.
type ipvlanPod struct {
	NS     harness.NetNS
	ID     string
	Addr   string
	Result *current.Result
}

func addIpvlanPod(t *testing.T, rt *harness.Runtime, v *ipvlanNet) ipvlanPod {
	t.Helper()
	p := ipvlanPod{NS: harness.NewNetNS(t, "ivpod"), ID: harness.Unique("ctr")}
	list := v.conflist()
	r, err := rt.Add(t, list, p.ID, p.NS.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD %s: %v", p.ID, err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, p.ID, p.NS.Path, "eth0", nil) })
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

// Every mode: two pods on one master reach each other and the peer on the master's segment, and the
// peer reaches them; the pod's interface is an ipvlan in that mode on the master, with its MAC and
// MTU; CHECK passes, and fails naming the mode against a config that says another; DEL twice.
func TestIpvlanModesPodsAndPeer(t *testing.T) {
	harness.RequireKernelFeature(t, "ipvlan", ipvlanAvailable(t))
	t.Parallel()
	for _, mode := range []string{"l2", "l3", "l3s"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			v := newIpvlanNet(t, mode)
			rt := harness.NewRuntime(t)
			a := addIpvlanPod(t, rt, v)
			b := addIpvlanPod(t, rt, v)

			master, err := netlink.LinkByName(v.Master)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Result.Interfaces) != 1 || a.Result.Interfaces[0].Sandbox != a.NS.Path || a.Result.Interfaces[0].Mac != master.Attrs().HardwareAddr.String() {
				t.Errorf("interfaces = %+v, want the pod's eth0 with the master's MAC %s", a.Result.Interfaces, master.Attrs().HardwareAddr)
			}
			if ipc := a.Result.IPs[0]; ipc.Interface == nil || *ipc.Interface != 0 {
				t.Errorf("IP %v does not point at interface 0", ipc)
			}
			l := podLink(t, a.NS)
			iv, ok := l.(*netlink.IPVlan)
			if !ok {
				t.Fatalf("pod interface is a %s", l.Type())
			}
			wantMode := map[string]netlink.IPVlanMode{"l2": netlink.IPVLAN_MODE_L2, "l3": netlink.IPVLAN_MODE_L3, "l3s": netlink.IPVLAN_MODE_L3S}[mode]
			if iv.Mode != wantMode || iv.ParentIndex != master.Attrs().Index || iv.MTU != master.Attrs().MTU {
				t.Errorf("ipvlan: mode %v (want %v) parent %d (master %d) mtu %d (master %d)", iv.Mode, wantMode, iv.ParentIndex, master.Attrs().Index, iv.MTU, master.Attrs().MTU)
			}
			if out := a.NS.Run(t, "ip", "-o", "link", "show"); strings.Contains(out, "nltmp") {
				t.Errorf("temporary link name left: %s", out)
			}

			for _, c := range []struct {
				from harness.NetNS
				to   string
			}{{a.NS, b.Addr}, {b.NS, a.Addr}, {a.NS, v.segAddr(2)}, {b.NS, v.segAddr(2)}, {v.Peer, a.Addr}, {v.Peer, b.Addr}} {
				if err := harness.Ping(t, c.from, c.to); err != nil {
					t.Errorf("ping %s from %s: %v", c.to, c.from.Name, err)
				}
			}

			list := v.conflist()
			for _, p := range []ipvlanPod{a, b} {
				if err := rt.Check(t, list, p.ID, p.NS.Path, "eth0", nil); err != nil {
					t.Errorf("CHECK %s: %v", p.ID, err)
				}
			}
			other := map[string]string{"l2": "l3", "l3": "l3s", "l3s": "l2"}[mode]
			v.Extra["mode"] = other
			if err := rt.Check(t, v.conflist(), a.ID, a.NS.Path, "eth0", nil); err == nil || !strings.Contains(err.Error(), "mode") {
				t.Errorf("CHECK with mode %s on a %s pod: %v", other, mode, err)
			}
			delete(v.Extra, "mode")

			for i := range 2 {
				if err := rt.Del(t, list, a.ID, a.NS.Path, "eth0", nil); err != nil {
					t.Fatalf("DEL #%d: %v", i+1, err)
				}
			}
			if err := a.NS.Do(func() error { _, err := netlink.LinkByName("eth0"); return err }); err == nil {
				t.Error("eth0 still in the pod after DEL")
			}
			if l := v.leases(t); len(l) != 1 || l[0] != b.Addr {
				t.Errorf("leases after DEL of a = %v, want only %s", l, b.Addr)
			}
		})
	}
}

func TestIpvlanMTUAndDefaultMode(t *testing.T) {
	harness.RequireKernelFeature(t, "ipvlan", ipvlanAvailable(t))
	t.Parallel()
	v := newIpvlanNet(t, "l2")
	v.Extra["mode"] = nil
	v.Extra["mtu"] = 1400
	rt := harness.NewRuntime(t)
	p := addIpvlanPod(t, rt, v)
	iv, ok := podLink(t, p.NS).(*netlink.IPVlan)
	if !ok {
		t.Fatal("pod interface is not an ipvlan")
	}
	if iv.Mode != netlink.IPVLAN_MODE_L2 || iv.MTU != 1400 {
		t.Errorf("ipvlan: mode %v mtu %d; want l2 (the default) and 1400", iv.Mode, iv.MTU)
	}
	if err := rt.Check(t, v.conflist(), p.ID, p.NS.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
}

func TestIpvlanDelAfterNetnsGone(t *testing.T) {
	harness.RequireKernelFeature(t, "ipvlan", ipvlanAvailable(t))
	t.Parallel()
	v := newIpvlanNet(t, "l2")
	rt := harness.NewRuntime(t)
	p := addIpvlanPod(t, rt, v)
	p.NS.Delete(t)
	list := v.conflist()
	for i := range 2 {
		if err := rt.Del(t, list, p.ID, p.NS.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL #%d after the netns is gone: %v", i+1, err)
		}
	}
	if l := v.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
}

func TestIpvlanGCReleasesLeaked(t *testing.T) {
	harness.RequireKernelFeature(t, "ipvlan", ipvlanAvailable(t))
	t.Parallel()
	v := newIpvlanNet(t, "l2")
	rt := harness.NewRuntime(t)
	a := addIpvlanPod(t, rt, v)
	b := addIpvlanPod(t, rt, v)
	if err := rt.GCOnly(t, v.conflist(), []types.GCAttachment{{ContainerID: a.ID, IfName: "eth0"}}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if l := v.leases(t); len(l) != 1 || l[0] != a.Addr {
		t.Errorf("leases after GC = %v, want only %s (b's %s released)", l, a.Addr, b.Addr)
	}
}

// The chained form: no "master" and no "ipam"; the master is the one interface of prevResult and the
// addresses are prevResult's, which DEL leaves to the previous plugin.
func TestIpvlanChained(t *testing.T) {
	harness.RequireKernelFeature(t, "ipvlan", ipvlanAvailable(t))
	t.Parallel()
	v := newIpvlanNet(t, "l2")
	n := harness.NewNetNS(t, "ivchain")
	podIP := v.segAddr(30)
	conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"ipvlan","prevResult":{"cniVersion":"1.1.0",`+
		`"interfaces":[{"name":%q}],"ips":[{"address":"%s/24","interface":0}]}}`, v.Name, v.Master, podIP))
	env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-chain", "CNI_NETNS": n.Path, "CNI_IFNAME": "eth0"}
	out, err := harness.RunPlugin(t, "ipvlan", env, conf)
	if err != nil {
		t.Fatalf("ADD: %v: %s", err, out)
	}
	var res current.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "eth0" || res.Interfaces[0].Sandbox != n.Path || len(res.IPs) != 1 || res.IPs[0].Address.IP.String() != podIP {
		t.Errorf("chained result: %s", out)
	}
	master, err := netlink.LinkByName(v.Master)
	if err != nil {
		t.Fatal(err)
	}
	if iv, ok := podLink(t, n).(*netlink.IPVlan); !ok || iv.ParentIndex != master.Attrs().Index {
		t.Errorf("pod interface is not an ipvlan on %s: %+v", v.Master, podLink(t, n))
	}
	if err := harness.Ping(t, n, v.segAddr(2)); err != nil {
		t.Errorf("chained pod cannot reach the peer: %v", err)
	}

	// CHECK with the ADD's result as prevResult, as a runtime sends it.
	var check map[string]any
	if err := json.Unmarshal(conf, &check); err != nil {
		t.Fatal(err)
	}
	check["prevResult"] = json.RawMessage(out)
	checkConf, _ := json.Marshal(check)
	env["CNI_COMMAND"] = "CHECK"
	if out, err := harness.RunPlugin(t, "ipvlan", env, checkConf); err != nil {
		t.Errorf("CHECK: %v: %s", err, out)
	}
	env["CNI_COMMAND"] = "DEL"
	for i := range 2 {
		if out, err := harness.RunPlugin(t, "ipvlan", env, checkConf); err != nil {
			t.Fatalf("DEL #%d: %v: %s", i+1, err, out)
		}
	}
	if o := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(o, "eth0") {
		t.Errorf("eth0 left after DEL: %s", o)
	}
}

func TestIpvlanStatus(t *testing.T) {
	harness.RequireKernelFeature(t, "ipvlan", ipvlanAvailable(t))
	t.Parallel()
	v := newIpvlanNet(t, "l2")
	status := func() ([]byte, error) {
		return harness.RunPlugin(t, "ipvlan", map[string]string{"CNI_COMMAND": "STATUS"}, v.netconf())
	}
	if out, err := status(); err != nil {
		t.Fatalf("STATUS with the master up: %v: %s", err, out)
	}
	master, err := netlink.LinkByName(v.Master)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(master); err != nil {
		t.Fatal(err)
	}
	out, err := status()
	wantCNIError(t, out, err, 50, v.Master, "down")
	if err := netlink.LinkDel(master); err != nil {
		t.Fatal(err)
	}
	out, err = status()
	wantCNIError(t, out, err, 50, v.Master, "not found")
}

// Every bad input: a CNI error naming the key, a non-zero exit, and nothing left (no link, no lease).
func TestIpvlanBadInput(t *testing.T) {
	harness.RequireKernelFeature(t, "ipvlan", ipvlanAvailable(t))
	t.Parallel()
	testStackedBadInput(t, "ipvlan", func(t *testing.T) stackedNet { return newIpvlanNet(t, "l2") }, []badInput{
		{name: "unknown mode", extra: map[string]any{"mode": "bridge"}, code: 7, naming: []string{"mode", "bridge"}},
		{name: "master does not exist", extra: map[string]any{"master": "nlnosuchmaster"}, code: 7, naming: []string{"master", "nlnosuchmaster"}, delOK: true},
		{name: "master in pod does not exist", extra: map[string]any{"linkInContainer": true}, code: 7, naming: []string{"master", "linkInContainer"}, delOK: true},
		{name: "mtu above the master's", extra: map[string]any{"mtu": 9000}, code: 7, naming: []string{"mtu", "1500"}, delOK: true},
		{name: "mtu too small", extra: map[string]any{"mtu": 10}, code: 7, naming: []string{"mtu"}},
		{name: "no ipam and no prevResult", extra: map[string]any{"ipam": nil}, code: 7, naming: []string{"ipam"}, delOK: true},
	})
}

// On a kernel without ipvlan (this machine's) ADD fails with code 7 naming the mode and saying the
// kernel lacks it, and leaves nothing: no link, no lease. Where ipvlan exists (the VM lane) there is
// nothing to test.
func TestIpvlanKernelWithoutIpvlan(t *testing.T) {
	harness.RequireRoot(t)
	if ipvlanAvailable(t) {
		t.Skip("this kernel has ipvlan; the test covers kernels that lack it")
	}
	t.Parallel()
	v := newIpvlanNet(t, "l3s")
	n := harness.NewNetNS(t, "ivnok")
	env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-nok", "CNI_NETNS": n.Path, "CNI_IFNAME": "eth0"}
	out, err := harness.RunPlugin(t, "ipvlan", env, v.netconf())
	wantCNIError(t, out, err, 7, "mode", "l3s", "kernel")
	if l := v.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	if o := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(o, "eth0") || strings.Contains(o, "nltmp") {
		t.Errorf("interface left in the pod: %s", o)
	}
	env["CNI_COMMAND"] = "DEL"
	if out, err := harness.RunPlugin(t, "ipvlan", env, v.netconf()); err != nil {
		t.Errorf("DEL after the failed ADD: %v: %s", err, out)
	}
}
