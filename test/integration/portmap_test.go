package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/nftnl"
	pmnft "github.com/netloom/netloom/pkg/portmap/nftables"
	"github.com/netloom/netloom/test/harness"
)

var portmapBackends = []string{"nftables", "iptables"}

// requirePortmapBackend skips a test that names portmap's nftables backend on a kernel that refuses
// it (before Linux 6.5, pmnft.Usable): there the backend's ADD is refused by design, which
// TestVMPortmapDefaultBackend checks in the VM lane, and the default is iptables.
func requirePortmapBackend(t testing.TB, backend string) {
	t.Helper()
	if backend == "nftables" && !pmnft.Usable() {
		t.Skipf("this test's network names portmap's nftables backend, which needs Linux 6.5; this kernel is %s, "+
			"where its ADD is refused by design (TestVMPortmapDefaultBackend checks that)", nftnl.Release())
	}
}

// portSeq hands out host ports no other test in this process uses.
var portSeq struct {
	sync.Mutex
	next uint16
}

func hostPorts(n int) uint16 {
	portSeq.Lock()
	defer portSeq.Unlock()
	if portSeq.next == 0 {
		portSeq.next = 31000
	}
	p := portSeq.next
	portSeq.next += uint16(n)
	return p
}

// portmapNet is a bridge network with portmap chained after it, and a client namespace wired to the
// host as another machine on the node's network would be.
type portmapNet struct {
	*bridgeNet
	backend  string
	client   harness.NetNS
	wire     harness.Wire
	nodeIP   netip.Addr // the host's address facing the client
	nodeIP6  netip.Addr
	clientIP netip.Addr
}

func newPortmapNet(t *testing.T, backend string, v6 bool) *portmapNet {
	t.Helper()
	requirePortmapBackend(t, backend)
	b := newBridgeNet(t, v6)
	b.Extra["hairpinMode"] = true
	p := &portmapNet{bridgeNet: b, backend: backend, client: harness.NewNetNS(t, "cl")}
	x := strings.Split(b.Subnets[0], ".")[2] // the bridge net's unique number
	p.wire = harness.ConnectToHost(t, p.client, "10.217."+x+".1/30", "10.217."+x+".2/30")
	p.nodeIP = netip.MustParseAddr("10.217." + x + ".1")
	p.clientIP = netip.MustParseAddr("10.217." + x + ".2")
	if v6 {
		harness.AddAddress(t, p.wire, "fd17:"+x+"::1/64", "fd17:"+x+"::2/64")
		p.nodeIP6 = netip.MustParseAddr("fd17:" + x + "::1")
	}
	return p
}

// id makes a container ID unique to the backend, so the two backends' subtests, which run in parallel,
// never see each other's rules.
func (p *portmapNet) id(s string) string { return s + "-" + p.backend }

// conflist chains portmap with p's backend, or with none named when it is "".
func (p *portmapNet) conflist() []byte {
	pm := map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}}
	if p.backend != "" {
		pm["backend"] = p.backend
	}
	out, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": p.Name, "plugins": []any{p.plugin(), pm}})
	return out
}

type portMapping struct {
	HostPort      uint16 `json:"hostPort"`
	ContainerPort uint16 `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

func capArgs(ms ...portMapping) map[string]any { return map[string]any{"portMappings": ms} }

// portmapRules returns the lines of the node's nftables ruleset and iptables-save nat tables that
// mention s (a container ID).
func portmapRules(s string) string {
	var out []string
	for _, cmd := range [][]string{{"nft", "list", "ruleset"}, {"iptables-save", "-t", "nat"}, {"ip6tables-save", "-t", "nat"}} {
		b, _ := exec.Command(cmd[0], cmd[1:]...).Output()
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, s) {
				out = append(out, strings.TrimSpace(line))
			}
		}
	}
	return strings.Join(out, "\n")
}

// addPod attaches a pod with a TCP and a UDP server, and returns its namespace.
func (p *portmapNet) addPod(t *testing.T, rt *harness.Runtime, id, reply string, caps map[string]any) (harness.NetNS, types.Result) {
	t.Helper()
	n := harness.NewNetNS(t, "pm")
	r, err := rt.Add(t, p.conflist(), id, n.Path, "eth0", caps)
	if err != nil {
		t.Fatalf("ADD %s: %v", id, err)
	}
	t.Cleanup(func() { _ = rt.Del(t, p.conflist(), id, n.Path, "eth0", caps) })
	harness.Serve(t, &n, "tcp", 80, reply)
	harness.Serve(t, &n, "udp", 53, reply+"-udp")
	return n, r
}

func expectReply(t *testing.T, what string, from *harness.NetNS, proto string, addr netip.Addr, port uint16, want string) {
	t.Helper()
	got, err := harness.Dial(from, proto, addr, port, 0)
	if err != nil || got != want {
		t.Errorf("%s: %s %s port %d: got %q (%v), want %q", what, proto, addr, port, got, err, want)
	}
}

func TestPortmapTraffic(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			t.Parallel()
			p := newPortmapNet(t, be, false)
			rt := harness.NewRuntime(t)
			hp := hostPorts(2)
			caps := capArgs(portMapping{hp, 80, "tcp", ""}, portMapping{hp + 1, 53, "udp", ""})
			podA, rA := p.addPod(t, rt, p.id("ctr-pm-a"), "pod-a", caps)
			podB, _ := p.addPod(t, rt, p.id("ctr-pm-b"), "pod-b", nil)
			gw := podAddrs(t, rA)[0].Masked().Addr().Next()

			expectReply(t, "another host", &p.client, "tcp", p.nodeIP, hp, "pod-a")
			expectReply(t, "another host, UDP", &p.client, "udp", p.nodeIP, hp+1, "pod-a-udp")
			expectReply(t, "the node to its own address", nil, "tcp", p.nodeIP, hp, "pod-a")
			expectReply(t, "the node to its bridge address", nil, "tcp", gw, hp, "pod-a")
			expectReply(t, "the node to 127.0.0.1", nil, "tcp", netip.MustParseAddr("127.0.0.1"), hp, "pod-a")
			expectReply(t, "a pod on the same bridge", &podB, "tcp", p.nodeIP, hp, "pod-a")
			expectReply(t, "the pod itself (hairpin)", &podA, "tcp", p.nodeIP, hp, "pod-a")

			if rules := portmapRules(p.id("ctr-pm-a")); rules == "" {
				t.Errorf("no %s rule names the container", be)
			}
			if err := rt.Check(t, p.conflist(), p.id("ctr-pm-a"), podA.Path, "eth0", caps); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			for i := range 2 {
				if err := rt.Del(t, p.conflist(), p.id("ctr-pm-a"), podA.Path, "eth0", caps); err != nil {
					t.Fatalf("DEL %d: %v", i+1, err)
				}
			}
			if rules := portmapRules(p.id("ctr-pm-a")); rules != "" {
				t.Errorf("rules left after DEL:\n%s", rules)
			}
			if got, err := harness.Dial(&p.client, "tcp", p.nodeIP, hp, 0); err == nil && got == "pod-a" {
				t.Errorf("host port still forwarded after DEL")
			}
		})
	}
}

func TestPortmapIPv6(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			t.Parallel()
			p := newPortmapNet(t, be, true)
			rt := harness.NewRuntime(t)
			hp := hostPorts(3)
			caps := capArgs(portMapping{hp, 80, "tcp", ""}, portMapping{hp + 1, 80, "tcp", p.nodeIP6.String()}, portMapping{hp + 2, 53, "udp", ""})
			p.addPod(t, rt, p.id("ctr-pm6"), "pod6", caps)
			expectReply(t, "another host over IPv4", &p.client, "tcp", p.nodeIP, hp, "pod6")
			expectReply(t, "another host over IPv6", &p.client, "tcp", p.nodeIP6, hp, "pod6")
			expectReply(t, "another host over IPv6, UDP", &p.client, "udp", p.nodeIP6, hp+2, "pod6-udp")
			expectReply(t, "IPv6 hostIP mapping", &p.client, "tcp", p.nodeIP6, hp+1, "pod6")
			expectReply(t, "the node to its own IPv6 address", nil, "tcp", p.nodeIP6, hp, "pod6")
			// The hostIP mapping is IPv6 only: the node's IPv4 address must not forward that port.
			if got, err := harness.Dial(&p.client, "tcp", p.nodeIP, hp+1, 0); err == nil && got == "pod6" {
				t.Errorf("an IPv6 hostIP mapping forwards IPv4 traffic")
			}
		})
	}
}

// A second attachment asking for a host port another one holds fails, names the owner, and leaves the
// owner's forwarding alone, also when the runtime then DELs the failed attachment.
func TestPortmapConflict(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			t.Parallel()
			p := newPortmapNet(t, be, false)
			rt := harness.NewRuntime(t)
			hp := hostPorts(1)
			caps := capArgs(portMapping{hp, 80, "tcp", ""})
			p.addPod(t, rt, p.id("ctr-owner"), "owner", caps)
			n := harness.NewNetNS(t, "pc")
			_, err := rt.Add(t, p.conflist(), p.id("ctr-thief"), n.Path, "eth0", caps)
			if err == nil {
				t.Fatal("second ADD of the same host port succeeded")
			}
			if !strings.Contains(err.Error(), p.id("ctr-owner")) || !strings.Contains(err.Error(), fmt.Sprint(hp)) {
				t.Errorf("conflict error does not name the owner and the port: %v", err)
			}
			if err := rt.Del(t, p.conflist(), p.id("ctr-thief"), n.Path, "eth0", caps); err != nil {
				t.Errorf("DEL of the failed attachment: %v", err)
			}
			expectReply(t, "owner after the conflict", &p.client, "tcp", p.nodeIP, hp, "owner")
			if rules := portmapRules(p.id("ctr-thief")); rules != "" {
				t.Errorf("rules of the failed attachment:\n%s", rules)
			}
		})
	}
}

// A UDP client that kept sending to a host port before the pod existed has a conntrack entry that
// does not go to the pod; ADD must flush it so the next datagram reaches the pod.
func TestPortmapFlushesStaleUDP(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			t.Parallel()
			p := newPortmapNet(t, be, false)
			rt := harness.NewRuntime(t)
			hp := hostPorts(1)
			src := hostPorts(1)
			_, _ = harness.Dial(&p.client, "udp", p.nodeIP, hp, src) // no pod yet: no answer
			flows, _ := exec.Command("conntrack", "-L", "-p", "udp", "--dport", fmt.Sprint(hp)).CombinedOutput()
			if !strings.Contains(string(flows), fmt.Sprintf("sport=%d", src)) {
				t.Fatalf("no conntrack entry for the early datagram:\n%s", flows)
			}
			p.addPod(t, rt, p.id("ctr-udp"), "fresh", capArgs(portMapping{hp, 53, "udp", ""}))
			got, err := harness.Dial(&p.client, "udp", p.nodeIP, hp, src)
			if err != nil || got != "fresh-udp" {
				flows, _ := exec.Command("conntrack", "-L", "-p", "udp", "--dport", fmt.Sprint(hp)).CombinedOutput()
				t.Errorf("datagram from the same source port after ADD: got %q (%v), want the pod's answer; conntrack:\n%s\nrules:\n%s",
					got, err, flows, portmapRules(p.id("ctr-udp")))
			}
		})
	}
}

// DEL without prevResult (a runtime that lost its cache) and GC both find an attachment's forwarding
// by its key alone.
func TestPortmapDelWithoutPrevResultAndGC(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			t.Parallel()
			p := newPortmapNet(t, be, false)
			rt := harness.NewRuntime(t)
			hp := hostPorts(3)
			podA, _ := p.addPod(t, rt, p.id("ctr-gc-a"), "a", capArgs(portMapping{hp, 80, "tcp", ""}))
			p.addPod(t, rt, p.id("ctr-gc-b"), "b", capArgs(portMapping{hp + 1, 80, "tcp", ""}))
			podC, _ := p.addPod(t, rt, p.id("ctr-gc-c"), "c", capArgs(portMapping{hp + 2, 80, "tcp", ""}))

			// DEL of A straight to the binary, with no prevResult.
			pm, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": p.Name, "type": "portmap", "backend": be,
				"runtimeConfig": capArgs(portMapping{hp, 80, "tcp", ""})})
			env := map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": p.id("ctr-gc-a"), "CNI_NETNS": podA.Path, "CNI_IFNAME": "eth0"}
			if out, err := harness.RunPlugin(t, "portmap", env, pm); err != nil {
				t.Fatalf("DEL without prevResult: %v: %s", err, out)
			}
			if rules := portmapRules(p.id("ctr-gc-a")); rules != "" {
				t.Errorf("rules left after DEL without prevResult:\n%s", rules)
			}
			// GC with only C valid (as after the runtime lost B): B's forwarding goes, C's stays.
			valid := []types.GCAttachment{{ContainerID: p.id("ctr-gc-c"), IfName: "eth0"}}
			if err := rt.GCOnly(t, p.conflist(), valid); err != nil {
				t.Fatalf("GC: %v", err)
			}
			if rules := portmapRules(p.id("ctr-gc-b")); rules != "" {
				t.Errorf("GC left the dead attachment's rules:\n%s", rules)
			}
			expectReply(t, "live pod after GC", &p.client, "tcp", p.nodeIP, hp+2, "c")
			if err := rt.Check(t, p.conflist(), p.id("ctr-gc-c"), podC.Path, "eth0", capArgs(portMapping{hp + 2, 80, "tcp", ""})); err != nil {
				t.Errorf("CHECK of the live pod after GC: %v", err)
			}
		})
	}
}

// Many pods at once, each with its own host port: every ADD succeeds and every port forwards.
func TestPortmapConcurrentAdds(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	const pods = 16
	for _, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			t.Parallel()
			p := newPortmapNet(t, be, false)
			rt := harness.NewRuntime(t)
			base := hostPorts(pods)
			nss := make([]harness.NetNS, pods)
			for i := range nss {
				nss[i] = harness.NewNetNS(t, "pcc")
			}
			var wg sync.WaitGroup
			errs := make([]error, pods)
			start := time.Now()
			for i := range pods {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("ctr-cc-%s-%d", be, i)
					_, errs[i] = rt.Add(t, p.conflist(), id, nss[i].Path, "eth0", capArgs(portMapping{base + uint16(i), 80, "tcp", ""}))
				}()
			}
			wg.Wait()
			t.Logf("%d concurrent ADDs (%s): %v", pods, be, time.Since(start))
			for i, err := range errs {
				if err != nil {
					t.Errorf("ADD %d: %v", i, err)
				}
			}
			for i := range pods {
				harness.Serve(t, &nss[i], "tcp", 80, fmt.Sprintf("cc-%d", i))
			}
			for i := range pods {
				expectReply(t, fmt.Sprintf("pod %d", i), &p.client, "tcp", p.nodeIP, base+uint16(i), fmt.Sprintf("cc-%d", i))
			}
			for i := range pods {
				id := fmt.Sprintf("ctr-cc-%s-%d", be, i)
				if err := rt.Del(t, p.conflist(), id, nss[i].Path, "eth0", capArgs(portMapping{base + uint16(i), 80, "tcp", ""})); err != nil {
					t.Errorf("DEL %d: %v", i, err)
				}
			}
			if rules := portmapRules("ctr-cc-" + be); rules != "" {
				t.Errorf("rules left after DEL of every pod:\n%s", rules)
			}
		})
	}
}

// Both backends on one node at once: a network using nftables and one using iptables each forward
// their own ports, and removing one's pod leaves the other's working.
func TestPortmapBackendsCoexist(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	nft := newPortmapNet(t, "nftables", false)
	ipt := newPortmapNet(t, "iptables", false)
	rt := harness.NewRuntime(t)
	hp := hostPorts(2)
	nftPod, _ := nft.addPod(t, rt, nft.id("ctr-co"), "via-nft", capArgs(portMapping{hp, 80, "tcp", ""}))
	ipt.addPod(t, rt, ipt.id("ctr-co"), "via-ipt", capArgs(portMapping{hp + 1, 80, "tcp", ""}))
	expectReply(t, "nftables network", &nft.client, "tcp", nft.nodeIP, hp, "via-nft")
	expectReply(t, "iptables network", &ipt.client, "tcp", ipt.nodeIP, hp+1, "via-ipt")
	expectReply(t, "iptables network from the other client", &nft.client, "tcp", nft.nodeIP, hp+1, "via-ipt")
	if err := rt.Del(t, nft.conflist(), nft.id("ctr-co"), nftPod.Path, "eth0", capArgs(portMapping{hp, 80, "tcp", ""})); err != nil {
		t.Fatalf("DEL of the nftables pod: %v", err)
	}
	expectReply(t, "iptables network after the nftables pod left", &ipt.client, "tcp", ipt.nodeIP, hp+1, "via-ipt")
}
