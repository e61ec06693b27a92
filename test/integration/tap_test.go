package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/test/harness"
)

// tapConflist is a one-plugin tap network with keys (a nil value deletes a key).
func tapConflist(cniVersion string, keys map[string]any) []byte {
	p := map[string]any{"type": "tap", "capabilities": map[string]bool{"mac": true}}
	return oneConflist(cniVersion, "tapnet", p, keys)
}

// tapState is what the kernel says of the pod's tap, read through the pod's sysfs.
func tapState(t *testing.T, pod harness.NetNS, ifName string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"owner", "group", "tun_flags", "mtu", "address"} {
		out[f] = strings.TrimSpace(pod.Run(t, "cat", "/sys/class/net/"+ifName+"/"+f))
	}
	return out
}

// Every CNI version: the tap exists in the pod with the configured owner, group, MTU, queues and the
// runtime's MAC, holds IPAM's address; CHECK passes; DEL removes it, twice.
func TestTapEveryVersion(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for i, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			mac := fmt.Sprintf("0a:58:0a:e9:00:%02x", i+1)
			list := tapConflist(v, map[string]any{"multiQueue": true, "mtu": 1400, "owner": 107, "group": 108,
				"ipam": map[string]any{"type": "static", "addresses": []any{map[string]any{"address": fmt.Sprintf("10.233.%d.5/24", i)}}}})
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "tappod")
			capArgs := map[string]any{"mac": mac}
			id, res := addAttachment(t, rt, list, pod, "tap0", capArgs)
			if res.Interfaces[0].Mac != mac {
				t.Errorf("interfaces %+v, want MAC %s", res.Interfaces, mac)
			}
			// IFF_TAP|IFF_VNET_HDR|IFF_NO_PI|IFF_MULTI_QUEUE|IFF_PERSIST with owner and group, as the reference.
			want := map[string]string{"owner": "107", "group": "108", "tun_flags": "0x5902", "mtu": "1400", "address": mac}
			if got := tapState(t, pod, "tap0"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("tap: %v, want %v", got, want)
			}
			if out := pod.Run(t, "ip", "-4", "addr", "show", "dev", "tap0"); !strings.Contains(out, fmt.Sprintf("inet 10.233.%d.5/24", i)) {
				t.Errorf("tap0:\n%s", out)
			}
			finishAttachment(t, rt, list, v, id, pod, "tap0", capArgs, nil)
		})
	}
}

// The same configurations make the same tap with both suites (owner, group, flags, MTU), and a tap the
// reference made is CHECKed and removed by netloom.
func TestTapMatchesReference(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	refDir := harness.ReferencePlugin(t, "tap")
	for _, tc := range []struct {
		name string
		keys map[string]any
	}{
		{"defaults", nil},
		{"owner only, mtu", map[string]any{"owner": 107, "mtu": 1400}},
		{"multi-queue, group only", map[string]any{"multiQueue": true, "group": 108}},
		{"owner and group", map[string]any{"owner": 107, "group": 108}},
		{"owner, group, multi-queue", map[string]any{"owner": 107, "group": 108, "multiQueue": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list := tapConflist("1.1.0", tc.keys)
			state := map[string]map[string]string{}
			for _, suite := range []string{"reference", "netloom"} {
				rt := harness.NewRuntime(t)
				if suite == "reference" {
					rt = rt.WithPath(t, refDir, harness.PluginDir(t))
				}
				pod := harness.NewNetNS(t, "tappod")
				id := harness.Unique("ctr")
				if _, err := rt.Add(t, list, id, pod.Path, "tap0", nil); err != nil {
					t.Fatalf("%s ADD: %v", suite, err)
				}
				state[suite] = tapState(t, pod, "tap0")
				delete(state[suite], "address")
				nl := rt.WithPath(t, harness.PluginDir(t))
				if err := nl.Check(t, list, id, pod.Path, "tap0", nil); err != nil {
					t.Errorf("netloom CHECK after %s ADD: %v", suite, err)
				}
				if err := nl.Del(t, list, id, pod.Path, "tap0", nil); err != nil {
					t.Errorf("netloom DEL after %s ADD: %v", suite, err)
				}
				if _, err := pod.Exec("ip", "link", "show", "tap0"); err == nil {
					t.Errorf("tap0 left after %s ADD and netloom DEL", suite)
				}
			}
			// The reference's netlink path (owner and group) ignores mtu; every other value must agree.
			if fmt.Sprint(state["netloom"]) != fmt.Sprint(state["reference"]) {
				t.Errorf("netloom's tap %v, the reference's %v", state["netloom"], state["reference"])
			}
		})
	}
}

// With "bridge", the tap is a port of that bridge in the pod.
func TestTapOnBridge(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	pod := harness.NewNetNS(t, "tappod")
	pod.Run(t, "ip", "link", "add", "k6t-eth0", "type", "bridge")
	list := tapConflist("1.1.0", map[string]any{"bridge": "k6t-eth0"})
	rt := harness.NewRuntime(t)
	id := harness.Unique("ctr")
	if _, err := rt.Add(t, list, id, pod.Path, "tap0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	var l netlink.Link
	var br netlink.Link
	if err := pod.Do(func() (err error) {
		if l, err = netlink.LinkByName("tap0"); err != nil {
			return err
		}
		br, err = netlink.LinkByName("k6t-eth0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if l.Attrs().MasterIndex != br.Attrs().Index || l.Attrs().Flags&1 == 0 {
		t.Errorf("tap0: master %d (bridge %d), flags %v", l.Attrs().MasterIndex, br.Attrs().Index, l.Attrs().Flags)
	}
	if err := rt.Check(t, list, id, pod.Path, "tap0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	for i := range 2 {
		if err := rt.Del(t, list, id, pod.Path, "tap0", nil); err != nil {
			t.Errorf("DEL %d: %v", i+1, err)
		}
	}
}

// Bad input comes back coded and leaves nothing in the pod.
func TestTapBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	pod := harness.NewNetNS(t, "tappod")
	pod.Run(t, "ip", "link", "add", "taken0", "type", "veth", "peer", "name", "taken1")
	for _, tc := range []struct {
		name, ifName string
		keys         map[string]any
		code         uint
		field        string
	}{
		{"bridge not in the pod", "tap0", map[string]any{"bridge": "nobr0"}, conf.CodeInvalidConfig, "bridge"},
		{"bridge is not a bridge", "tap0", map[string]any{"bridge": "lo"}, conf.CodeInvalidConfig, "bridge"},
		{"mtu too large", "tap0", map[string]any{"mtu": 70000}, conf.CodeInvalidConfig, "mtu"},
		{"CNI_IFNAME taken", "taken0", nil, conf.CodeInvalidEnvironment, "CNI_IFNAME"},
		{"bad IPAM", "tap0", map[string]any{"ipam": map[string]any{"type": "static", "addresses": []any{map[string]any{"address": "x"}}}}, conf.CodeInvalidConfig, "ipam.addresses[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireAddRefused(t, tapConflist("1.1.0", tc.keys), pod, tc.ifName, tc.code, tc.field)
			requireNoLink(t, pod, "tap0", "after the failed ADD")
		})
	}
}

// Killed at every step of ADD (host-local leasing), then DEL and GC: no tap, no lease.
func TestFaultPointsTap(t *testing.T) {
	harness.RequireRoot(t)
	dataDir := t.TempDir()
	network := harness.Unique("tapflt")
	list, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": network, "plugins": []any{map[string]any{
		"type": "tap", "ipam": map[string]any{"type": "host-local", "dataDir": dataDir, "ranges": []any{[]any{map[string]string{"subnet": "10.233.99.0/24"}}}}}}})
	faultChain{list: list, points: stepPoints("tap", "create", "allocate", "configure"), leftovers: podAndLeases(dataDir, network)}.killAtEveryPoint(t, "tap")
}
