package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/test/harness"
)

// hdDevice is a device to hand to pods: the host end of a veth pair whose other end, in a peer
// namespace, holds 10.232.x.2/24 (x unique per device), so a pod that got the device reaches the peer.
type hdDevice struct {
	Name string
	MAC  string
	Peer harness.NetNS
	x    int
}

var hdSeq struct {
	sync.Mutex
	n int
}

func newHostDevice(t *testing.T) hdDevice {
	t.Helper()
	hdSeq.Lock()
	hdSeq.n++
	x := hdSeq.n
	hdSeq.Unlock()
	d := hdDevice{Name: harness.Unique("nlhd"), Peer: harness.NewNetNS(t, "hdpeer"), x: x}
	peer := harness.Unique("nlhp")
	la := netlink.NewLinkAttrs()
	la.Name = d.Name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}); err != nil {
		t.Fatalf("create veth %s: %v", d.Name, err)
	}
	harness.RemoveLinkOnCleanup(t, d.Name)
	l, err := netlink.LinkByName(d.Name)
	if err != nil {
		t.Fatal(err)
	}
	d.MAC = l.Attrs().HardwareAddr.String()
	harness.HostRun(t, "ip", "link", "set", peer, "netns", d.Peer.Name)
	d.Peer.Run(t, "ip", "addr", "add", d.addr(2)+"/24", "dev", peer, "nodad")
	d.Peer.Run(t, "ip", "link", "set", peer, "up")
	return d
}

func (d hdDevice) addr(host int) string { return fmt.Sprintf("10.232.%d.%d", d.x, host) }

// staticIPAM gives the pod .5 with the peer as gateway.
func (d hdDevice) staticIPAM() map[string]any {
	return map[string]any{"type": "static", "addresses": []any{map[string]any{"address": d.addr(5) + "/24", "gateway": d.addr(2)}},
		"routes": []any{map[string]any{"dst": "192.168.232.0/24"}}}
}

func (d hdDevice) conflist(cniVersion string, keys map[string]any) []byte {
	p := map[string]any{"type": "host-device", "device": d.Name, "ipam": d.staticIPAM()}
	return oneConflist(cniVersion, "hdnet", p, keys)
}

// requireOnHost fails t unless the device is back in the host's namespace under its name, without
// the alias that held that name while it was in a pod.
func (d hdDevice) requireOnHost(t *testing.T) {
	t.Helper()
	l, err := netlink.LinkByName(d.Name)
	if err != nil {
		t.Fatalf("device %s is not back on the host: %v", d.Name, err)
	}
	if l.Attrs().Alias != "" || l.Attrs().HardwareAddr.String() != d.MAC {
		t.Errorf("device %s back with alias %q, MAC %s", d.Name, l.Attrs().Alias, l.Attrs().HardwareAddr)
	}
}

// requireInPod fails t unless the pod's eth0 is the device (its MAC), with its name in the alias.
func (d hdDevice) requireInPod(t *testing.T, pod harness.NetNS) {
	t.Helper()
	l := podLink(t, pod)
	if l.Attrs().Alias != d.Name || l.Attrs().HardwareAddr.String() != d.MAC || l.Attrs().Flags&1 == 0 {
		t.Errorf("pod's eth0: alias %q, MAC %s, flags %v; want alias %s, MAC %s, up", l.Attrs().Alias, l.Attrs().HardwareAddr, l.Attrs().Flags, d.Name, d.MAC)
	}
	if _, err := netlink.LinkByName(d.Name); err == nil {
		t.Errorf("%s is still in the host's namespace", d.Name)
	}
}

// Every CNI version, the device found by each of its keys: the pod gets the device as eth0 with
// IPAM's address and routes and reaches the peer through it; CHECK passes; DEL gives it back under its
// name, twice.
func TestHostDeviceEveryVersionPing(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for i, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			d := newHostDevice(t)
			keys := map[string]any{}
			if i%2 == 1 {
				keys = map[string]any{"device": nil, "hwaddr": d.MAC}
			}
			list := d.conflist(v, keys)
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "hdpod")
			id, res := addAttachment(t, rt, list, pod, "eth0", nil)
			if res.Interfaces[0].Mac != d.MAC {
				t.Errorf("interfaces %+v, want MAC %s", res.Interfaces, d.MAC)
			}
			d.requireInPod(t, pod)
			if out := pod.Run(t, "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet "+d.addr(5)+"/24") {
				t.Errorf("pod's eth0:\n%s", out)
			}
			if out := pod.Run(t, "ip", "-4", "route", "show", "192.168.232.0/24"); !strings.Contains(out, "via "+d.addr(2)+" dev eth0") {
				t.Errorf("pod's route: %q", out)
			}
			if err := harness.Ping(t, pod, d.addr(2)); err != nil {
				t.Errorf("pod -> peer over the device: %v", err)
			}
			finishAttachment(t, rt, list, v, id, pod, "eth0", nil, func() { d.requireInPod(t, pod) })
			d.requireOnHost(t)
		})
	}
}

// Pods survive a switch of plugin suites both ways: a device the reference moved in is CHECKed and
// given back by netloom's DEL, and one netloom moved in is given back by the reference's DEL.
func TestHostDeviceReferenceSwitch(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	refDir := harness.ReferencePlugin(t, "host-device")
	// static is netloom's in both directions: only host-device changes.
	for _, tc := range []struct {
		name           string
		addBy, delBy   func(*harness.Runtime) *harness.Runtime
		checkByNetloom bool
	}{
		{name: "reference ADD, netloom CHECK and DEL", checkByNetloom: true,
			addBy: func(r *harness.Runtime) *harness.Runtime { return r.WithPath(t, refDir, harness.PluginDir(t)) },
			delBy: func(r *harness.Runtime) *harness.Runtime { return r.WithPath(t, harness.PluginDir(t)) }},
		{name: "netloom ADD, reference DEL",
			addBy: func(r *harness.Runtime) *harness.Runtime { return r.WithPath(t, harness.PluginDir(t)) },
			delBy: func(r *harness.Runtime) *harness.Runtime { return r.WithPath(t, refDir, harness.PluginDir(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newHostDevice(t)
			list := d.conflist("1.1.0", nil)
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "hdpod")
			id := harness.Unique("ctr")
			if _, err := tc.addBy(rt).Add(t, list, id, pod.Path, "eth0", nil); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			d.requireInPod(t, pod)
			if err := harness.Ping(t, pod, d.addr(2)); err != nil {
				t.Errorf("pod -> peer: %v", err)
			}
			if tc.checkByNetloom {
				if err := tc.delBy(rt).Check(t, list, id, pod.Path, "eth0", nil); err != nil {
					t.Errorf("netloom CHECK: %v", err)
				}
			}
			if err := tc.delBy(rt).Del(t, list, id, pod.Path, "eth0", nil); err != nil {
				t.Errorf("DEL: %v", err)
			}
			d.requireOnHost(t)
		})
	}
}

// Bad input comes back coded and leaves the device where it was.
func TestHostDeviceBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	d := newHostDevice(t)
	pod := harness.NewNetNS(t, "hdpod")
	pod.Run(t, "ip", "link", "add", "taken0", "type", "veth", "peer", "name", "taken1")
	for _, tc := range []struct {
		name, ifName string
		keys         map[string]any
		code         uint
		field        string
	}{
		{"no device key", "eth0", map[string]any{"device": nil}, conf.CodeInvalidConfig, "device"},
		{"device not on the node", "eth0", map[string]any{"device": "nlhdmissing0"}, conf.CodeInvalidConfig, "device"},
		{"no interface with hwaddr", "eth0", map[string]any{"device": nil, "hwaddr": "0a:58:00:00:00:99"}, conf.CodeInvalidConfig, "hwaddr"},
		{"kernelpath outside /sys/devices", "eth0", map[string]any{"device": nil, "kernelpath": "/etc"}, conf.CodeInvalidConfig, "kernelpath"},
		{"unknown deviceID", "eth0", map[string]any{"device": nil, "runtimeConfig": map[string]any{"deviceID": "0000:ff:1f.7"}}, conf.CodeInvalidConfig, "deviceID"},
		{"CNI_IFNAME taken in the pod", "taken0", nil, conf.CodeInvalidEnvironment, "CNI_IFNAME"},
		{"bad IPAM address", "eth0", map[string]any{"ipam": map[string]any{"type": "static", "addresses": []any{map[string]any{"address": "10.232.0.5"}}}}, conf.CodeInvalidConfig, "ipam.addresses[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireAddRefused(t, d.conflist("1.1.0", tc.keys), pod, tc.ifName, tc.code, tc.field)
			d.requireOnHost(t)
		})
	}
	// A pod interface host-device did not move in (no alias) is left alone, and DEL says so.
	stdin := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"hd","type":"host-device","device":%q}`, d.Name))
	out, err := harness.RunPlugin(t, "host-device", harness.CNIEnv("DEL", "ctr1", pod.Path, "taken0", ""), stdin)
	if err == nil || !strings.Contains(string(out), "alias") {
		t.Errorf("DEL of an interface without alias: %v %s", err, out)
	}
	if _, err := pod.Exec("ip", "link", "show", "taken0"); err != nil {
		t.Errorf("DEL touched taken0: %v", err)
	}
	// DEL of a pod whose namespace is gone succeeds.
	gone := harness.NewNetNS(t, "hdgone")
	gone.Delete(t)
	if out, err := harness.RunPlugin(t, "host-device", harness.CNIEnv("DEL", "ctr2", gone.Path, "eth0", ""), stdin); err != nil {
		t.Errorf("DEL with the namespace gone: %v %s", err, out)
	}
}

// Killed at every step of ADD (host-local leasing, so a lost lease shows), then DEL and GC: the device
// is back on the host, the pod is empty and no lease is left.
func TestFaultPointsHostDevice(t *testing.T) {
	harness.RequireRoot(t)
	d := newHostDevice(t)
	dataDir := t.TempDir()
	network := harness.Unique("hdflt")
	list, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": network, "plugins": []any{map[string]any{
		"type": "host-device", "device": d.Name, "ipam": map[string]any{"type": "host-local", "dataDir": dataDir,
			"ranges": []any{[]any{map[string]string{"subnet": fmt.Sprintf("10.232.%d.0/24", d.x), "rangeStart": d.addr(10), "rangeEnd": d.addr(20)}}}}}}})
	points := append(stepPoints("host-device", "move", "allocate", "configure"), stepPoints("host-local", "allocate")...)
	podLeft := podAndLeases(dataDir, network)
	faultChain{list: list, points: points, leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
		left := podLeft(t, id, pod)
		if _, err := netlink.LinkByName(d.Name); err != nil {
			left = append(left, "device "+d.Name+" not on the host")
		}
		return left
	}}.killAtEveryPoint(t, "hd")
}
