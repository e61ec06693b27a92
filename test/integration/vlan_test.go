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

// vlanSegment is a VLAN trunk: the host end of a veth pair is the master; its far end, in a peer
// namespace, carries VLAN 100 as <peer>.100 holding 10.235.0.2/24, the other side of the pods' VLAN.
type vlanSegment struct {
	Master string
	Peer   harness.NetNS
}

func newVlanSegment(t *testing.T) vlanSegment {
	t.Helper()
	s := vlanSegment{Master: harness.Unique("nlvm"), Peer: harness.NewNetNS(t, "vlpeer")}
	peer := harness.Unique("nlvp")
	la := netlink.NewLinkAttrs()
	la.Name = s.Master
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}); err != nil {
		t.Fatalf("create veth %s: %v", s.Master, err)
	}
	harness.RemoveLinkOnCleanup(t, s.Master)
	harness.HostRun(t, "ip", "link", "set", s.Master, "up")
	harness.HostRun(t, "ip", "link", "set", peer, "netns", s.Peer.Name)
	s.Peer.Run(t, "ip", "link", "set", peer, "up")
	s.Peer.Run(t, "ip", "link", "add", "link", peer, "name", "trunk.100", "type", "vlan", "id", "100")
	s.Peer.Run(t, "ip", "addr", "add", "10.235.0.2/24", "dev", "trunk.100", "nodad")
	s.Peer.Run(t, "ip", "link", "set", "trunk.100", "up")
	return s
}

// conflist is a vlan network on the segment's master, VLAN 100, the pod's address .host (keys: more
// plugin keys, a nil value deleting one).
func (s vlanSegment) conflist(cniVersion string, host int, keys map[string]any) []byte {
	p := map[string]any{"type": "vlan", "master": s.Master, "vlanId": 100,
		"ipam": map[string]any{"type": "static", "addresses": []any{map[string]any{"address": fmt.Sprintf("10.235.0.%d/24", host)}}}}
	return oneConflist(cniVersion, "vlnet", p, keys)
}

func vlanAvailable(t *testing.T) bool {
	n := harness.NewNetNS(t, "probe")
	defer n.Delete(t)
	_, err := n.Exec("sh", "-c", "ip link add nlprobe0 type veth peer name nlprobe1 && ip link add link nlprobe0 name nlprobe0.5 type vlan id 5")
	return err == nil
}

// The VM lane (this kernel has no 802.1q): every CNI version, the pod's VLAN link on the master reaches
// the peer's VLAN 100 interface over the trunk; CHECK passes; DEL twice leaves nothing. Then the master
// in the pod (linkInContainer), a reference ADD CHECKed and removed by netloom, and bad input.
func TestVMVlan(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireKernelFeature(t, "802.1q VLAN links", vlanAvailable(t))
	s := newVlanSegment(t)
	for i, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			list := s.conflist(v, 10+i, map[string]any{"mtu": 1400})
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "vlpod")
			id, _ := addAttachment(t, rt, list, pod, "eth0", nil)
			l := podLink(t, pod)
			if vl, ok := l.(*netlink.Vlan); !ok || vl.VlanId != 100 || l.Attrs().MTU != 1400 {
				t.Errorf("pod's eth0: %s %+v", l.Type(), l)
			}
			if err := harness.Ping(t, pod, "10.235.0.2"); err != nil {
				t.Errorf("pod -> peer over VLAN 100: %v", err)
			}
			finishAttachment(t, rt, list, v, id, pod, "eth0", nil, nil)
		})
	}
	t.Run("linkInContainer", func(t *testing.T) {
		pod := harness.NewNetNS(t, "vlpod")
		pod.Run(t, "ip", "link", "add", "m0", "type", "veth", "peer", "name", "m1")
		pod.Run(t, "ip", "link", "set", "m0", "up")
		list := s.conflist("1.1.0", 20, map[string]any{"master": "m0", "linkInContainer": true, "vlanId": 7})
		rt := harness.NewRuntime(t)
		id := harness.Unique("ctr")
		if _, err := rt.Add(t, list, id, pod.Path, "eth0", nil); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		if out := pod.Run(t, "ip", "-d", "link", "show", "eth0"); !strings.Contains(out, "@m0") || !strings.Contains(out, "vlan protocol 802.1Q id 7") {
			t.Errorf("eth0:\n%s", out)
		}
		if err := rt.Check(t, list, id, pod.Path, "eth0", nil); err != nil {
			t.Errorf("CHECK: %v", err)
		}
		if err := rt.Del(t, list, id, pod.Path, "eth0", nil); err != nil {
			t.Errorf("DEL: %v", err)
		}
	})
	t.Run("reference ADD, netloom CHECK and DEL", func(t *testing.T) {
		requireReferenceAdopted(t, "vlan", s.conflist("1.1.0", 30, nil), harness.NewNetNS(t, "vlpod"), "eth0")
	})
	t.Run("bad input", func(t *testing.T) {
		pod := harness.NewNetNS(t, "vlpod")
		for _, tc := range []struct {
			keys  map[string]any
			code  uint
			field string
		}{
			{map[string]any{"master": "nlvmissing0"}, conf.CodeInvalidConfig, "master"},
			{map[string]any{"master": nil}, conf.CodeInvalidConfig, "master"},
			{map[string]any{"vlanId": 5000}, conf.CodeInvalidConfig, "vlanId"},
			{map[string]any{"mtu": 9000}, conf.CodeInvalidConfig, "mtu"},
		} {
			requireAddRefused(t, s.conflist("1.1.0", 40, tc.keys), pod, "eth0", tc.code, tc.field)
			requireNoLink(t, pod, "eth0", "after a failed ADD")
		}
	})
}

// Killed at every step of ADD (host-local leasing), then DEL and GC: no link, no lease.
func TestVMFaultPointsVlan(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireKernelFeature(t, "802.1q VLAN links", vlanAvailable(t))
	s := newVlanSegment(t)
	dataDir := t.TempDir()
	network := harness.Unique("vlflt")
	list, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": network, "plugins": []any{map[string]any{
		"type": "vlan", "master": s.Master, "vlanId": 100, "ipam": map[string]any{"type": "host-local", "dataDir": dataDir,
			"ranges": []any{[]any{map[string]string{"subnet": "10.235.0.0/24", "rangeStart": "10.235.0.100", "rangeEnd": "10.235.0.120"}}}}}}})
	faultChain{list: list, points: stepPoints("vlan", "create", "allocate", "configure"), leftovers: podAndLeases(dataDir, network)}.killAtEveryPoint(t, "vl")
}
