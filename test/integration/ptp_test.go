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
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

// ptpNet is one ptp test network: a unique name, subnet(s) and dataDir, so tests run in parallel.
// 10.219.x.0/24 and fd19:x::/64 are test-only ranges.
type ptpNet struct {
	Name, DataDir string
	Subnets       []string
	Extra         map[string]any // more ptp keys
}

var ptpSubnetSeq struct {
	sync.Mutex
	n int
}

func newPtpNet(t *testing.T, v6 bool) *ptpNet {
	t.Helper()
	ptpSubnetSeq.Lock()
	ptpSubnetSeq.n++
	x := ptpSubnetSeq.n
	ptpSubnetSeq.Unlock()
	p := &ptpNet{
		Name:    harness.Unique("ptp"),
		DataDir: t.TempDir(),
		Subnets: []string{fmt.Sprintf("10.219.%d.0/24", x)},
		Extra:   map[string]any{},
	}
	if v6 {
		p.Subnets = append(p.Subnets, fmt.Sprintf("fd19:%x::/64", x))
	}
	return p
}

func (p *ptpNet) plugin() map[string]any {
	ranges := [][]map[string]string{}
	for _, s := range p.Subnets {
		ranges = append(ranges, []map[string]string{{"subnet": s}})
	}
	routes := []map[string]string{{"dst": "0.0.0.0/0"}}
	if len(p.Subnets) > 1 {
		routes = append(routes, map[string]string{"dst": "::/0"})
	}
	m := map[string]any{
		"type": "ptp",
		"ipam": map[string]any{"type": "host-local", "dataDir": p.DataDir, "ranges": ranges, "routes": routes},
	}
	for k, v := range p.Extra {
		m[k] = v
	}
	return m
}

func (p *ptpNet) conflist(cniVersion string) []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": p.Name, "plugins": []any{p.plugin()}})
	return out
}

func (p *ptpNet) netconf(cniVersion string) []byte {
	m := p.plugin()
	m["cniVersion"], m["name"] = cniVersion, p.Name
	out, _ := json.Marshal(m)
	return out
}

func (p *ptpNet) leases(t *testing.T) []string { return harness.Leases(t, p.DataDir, p.Name) }

// gateway is the gateway host-local gives subnet i: its first address.
func (p *ptpNet) gateway(i int) netip.Addr { return netip.MustParsePrefix(p.Subnets[i]).Addr().Next() }

// nodeState lists what the network left on the node: links holding a gateway address, and routes into
// its subnets. Empty when nothing.
func (p *ptpNet) nodeState(t *testing.T) []string {
	t.Helper()
	var out []string
	for i, s := range p.Subnets {
		fam := "-4"
		if strings.Contains(s, ":") {
			fam = "-6"
		}
		gw := p.gateway(i).String() + "/"
		addrs, _ := exec.Command("ip", "-o", fam, "addr", "show").Output()
		for line := range strings.SplitSeq(string(addrs), "\n") {
			if strings.Contains(line, " "+gw) {
				out = append(out, "gateway address: "+strings.Join(strings.Fields(line), " "))
			}
		}
		prefix := strings.TrimSuffix(strings.TrimSuffix(s, "0/24"), "/64") // "10.219.3." or "fd19:3::"
		routes, _ := exec.Command("ip", fam, "route", "show").Output()
		for line := range strings.SplitSeq(string(routes), "\n") {
			if strings.HasPrefix(line, prefix) {
				out = append(out, "route: "+line)
			}
		}
	}
	return out
}

// waitNodeClean waits for the node to hold nothing of the network (the kernel removes a deleted
// namespace's veth asynchronously) and fails the test when something stays.
func (p *ptpNet) waitNodeClean(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(p.nodeState(t)) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := p.nodeState(t); len(s) != 0 {
		t.Errorf("left on the node:\n%s", strings.Join(s, "\n"))
	}
}

func ptpResult(t *testing.T, r types.Result) *current.Result {
	t.Helper()
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// addPod ADDs pod id in n and DELs it in the test's cleanup.
func addPod(t *testing.T, rt *harness.Runtime, list []byte, id string, n harness.NetNS) types.Result {
	t.Helper()
	r, err := rt.Add(t, list, id, n.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD %s: %v", id, err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, id, n.Path, "eth0", nil) })
	return r
}

// Two pods ping each other and the node; the kernel looks as the reference ptp leaves it.
func TestPtpTwoPodsPing(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	p := newPtpNet(t, false)
	rt := harness.NewRuntime(t)
	list := p.conflist("1.1.0")
	nsA, nsB := harness.NewNetNS(t, "ta"), harness.NewNetNS(t, "tb")
	rA, rB := addPod(t, rt, list, "ctr-a", nsA), addPod(t, rt, list, "ctr-b", nsB)

	res := ptpResult(t, rA)
	gw := p.gateway(0)
	// The reference's layout: host end first, then the pod end with its sandbox; IPs on the pod end
	// with IPAM's gateway.
	if len(res.Interfaces) != 2 || res.Interfaces[1].Name != "eth0" || res.Interfaces[1].Sandbox != nsA.Path ||
		res.Interfaces[0].Sandbox != "" || res.Interfaces[0].Mac == "" || res.Interfaces[1].Mac == "" {
		t.Fatalf("result interfaces %+v", res.Interfaces)
	}
	if len(res.IPs) != 1 || res.IPs[0].Interface == nil || *res.IPs[0].Interface != 1 || res.IPs[0].Gateway.String() != gw.String() {
		t.Fatalf("result IPs %+v, want one on interface 1 with gateway %s", res.IPs, gw)
	}
	a, b := podAddrs(t, rA)[0], podAddrs(t, rB)[0]
	for _, c := range []struct {
		from harness.NetNS
		to   string
	}{{nsA, b.Addr().String()}, {nsB, a.Addr().String()}, {nsA, gw.String()}} {
		if err := harness.Ping(t, c.from, c.to); err != nil {
			t.Errorf("%s -> %s: %v", c.from.Name, c.to, err)
		}
	}

	host := res.Interfaces[0].Name
	if out, _ := exec.Command("ip", "-4", "addr", "show", "dev", host).Output(); !strings.Contains(string(out), gw.String()+"/32") {
		t.Errorf("host end %s addresses %q lack the gateway %s/32", host, out, gw)
	}
	if out, _ := exec.Command("ip", "-4", "route", "show", a.Addr().String()).Output(); !strings.Contains(string(out), "dev "+host) {
		t.Errorf("node route to %s = %q, want through %s", a.Addr(), out, host)
	}
	if out := nsA.Run(t, "ip", "-4", "route", "show", "default"); !strings.Contains(out, "via "+gw.String()) {
		t.Errorf("pod default route = %q, want via %s", out, gw)
	}
	// The subnet goes through the gateway too: no connected route to it in the pod.
	routes := nsA.Run(t, "ip", "-4", "route", "show")
	if !strings.Contains(routes, a.Masked().String()+" via "+gw.String()) || !strings.Contains(routes, gw.String()+" dev eth0 scope link") {
		t.Errorf("pod routes:\n%s", routes)
	}
	if strings.Contains(routes, a.Masked().String()+" dev eth0 proto kernel") {
		t.Errorf("pod kept the kernel's subnet route:\n%s", routes)
	}
}

func TestPtpDualStack(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	p := newPtpNet(t, true)
	rt := harness.NewRuntime(t)
	list := p.conflist("1.1.0")
	nsA, nsB := harness.NewNetNS(t, "sa"), harness.NewNetNS(t, "sb")
	rA, rB := addPod(t, rt, list, "ctr-a", nsA), addPod(t, rt, list, "ctr-b", nsB)
	addrsA, addrsB := podAddrs(t, rA), podAddrs(t, rB)
	if len(addrsA) != 2 || len(addrsB) != 2 {
		t.Fatalf("want one v4 and one v6 address each, got %v and %v", addrsA, addrsB)
	}
	for i := range addrsA {
		if err := harness.Ping(t, nsA, addrsB[i].Addr().String()); err != nil {
			t.Errorf("a -> %s: %v", addrsB[i], err)
		}
		if err := harness.Ping(t, nsB, p.gateway(i).String()); err != nil {
			t.Errorf("b -> gateway %s: %v", p.gateway(i), err)
		}
	}
	host := ptpResult(t, rA).Interfaces[0].Name
	if out, _ := exec.Command("ip", "-6", "addr", "show", "dev", host).Output(); !strings.Contains(string(out), p.gateway(1).String()+"/128") {
		t.Errorf("host end %s lacks the IPv6 gateway %s/128: %s", host, p.gateway(1), out)
	}
	if out := nsA.Run(t, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via "+p.gateway(1).String()) {
		t.Errorf("IPv6 default route = %q", out)
	}
	if err := rt.Check(t, list, "ctr-a", nsA.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
}

// Every CNI version the bridge test covers, through libcni and through the binary directly.
func TestPtpEveryCNIVersion(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, v := range cniVersions {
		t.Run(v, func(t *testing.T) {
			p := newPtpNet(t, false)
			versionRoundTrip(t, "ptp", v, p.conflist(v), p.netconf(v), p.leases)
			p.waitNodeClean(t)
		})
	}
}

// CHECK passes on a fresh pod, then fails naming what drifted: the pod's address, then the host end's
// route to the pod.
func TestPtpCheckDetectsDrift(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	p := newPtpNet(t, false)
	rt := harness.NewRuntime(t)
	list := p.conflist("1.1.0")
	n := harness.NewNetNS(t, "c")
	r := addPod(t, rt, list, "ctr-c", n)
	if err := rt.Check(t, list, "ctr-c", n.Path, "eth0", nil); err != nil {
		t.Fatalf("CHECK on a healthy pod: %v", err)
	}
	a := podAddrs(t, r)[0]
	host := ptpResult(t, r).Interfaces[0].Name
	if out, err := exec.Command("ip", "route", "del", a.Addr().String()+"/32", "dev", host).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	err := rt.Check(t, list, "ctr-c", n.Path, "eth0", nil)
	if err == nil || !strings.Contains(err.Error(), a.Addr().String()) {
		t.Fatalf("CHECK after removing the node's route to the pod: %v, want an error naming %s", err, a.Addr())
	}
	n.Run(t, "ip", "addr", "del", a.String(), "dev", "eth0")
	err = rt.Check(t, list, "ctr-c", n.Path, "eth0", nil)
	if err == nil || !strings.Contains(err.Error(), a.String()) {
		t.Fatalf("CHECK after removing %s: %v, want an error naming the address", a, err)
	}
}

// DEL twice, and DEL after the namespace is gone, leave no link, lease, route or masquerade rule.
func TestPtpDelIdempotent(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	p := newPtpNet(t, false)
	p.Extra["ipMasq"] = true
	rt := harness.NewRuntime(t)
	list := p.conflist("1.1.0")
	n := harness.NewNetNS(t, "d")
	r, err := rt.Add(t, list, "ctr-d", n.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	host := ptpResult(t, r).Interfaces[0].Name
	for i := range 2 {
		if err := rt.Del(t, list, "ctr-d", n.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	if _, err := netlink.LinkByName(host); err == nil {
		t.Errorf("host end %s left after DEL", host)
	}
	n2 := harness.NewNetNS(t, "e")
	if _, err := rt.Add(t, list, "ctr-e", n2.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	path := n2.Path
	n2.Delete(t)
	for i := range 2 {
		if err := rt.Del(t, list, "ctr-e", path, "eth0", nil); err != nil {
			t.Fatalf("DEL #%d after netns removal: %v", i+1, err)
		}
	}
	if l := p.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	p.waitNodeClean(t)
	if rules := masqRulesFor(t, p.Name); rules != "" {
		t.Errorf("masquerade rules left:\n%s", rules)
	}
}

func TestPtpGCReleasesLeaked(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	p := newPtpNet(t, false)
	p.Extra["ipMasq"] = true
	gcReleasesLeaked(t, p.Name, p.conflist("1.1.0"), p.leases)
}

func TestPtpMasqueradeBackends(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range []string{"iptables", "nftables"} {
		t.Run(be, func(t *testing.T) {
			p := newPtpNet(t, true)
			p.Extra["ipMasq"] = true
			p.Extra["ipMasqBackend"] = be
			masqRoundTrip(t, p.Name, p.conflist("1.1.0"), be)
			p.waitNodeClean(t)
		})
	}
}

// A failed ADD leaves nothing: an IPAM plugin that does not exist fails before anything is made, and an
// MTU too small for IPv6 fails configuring the pod after the lease and the veth exist.
func TestPtpFailedAddRollsBack(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, c := range []struct {
		name  string
		v6    bool
		extra map[string]any
		want  string
	}{
		{name: "no such ipam plugin", extra: map[string]any{"ipam": map[string]any{"type": "no-such-ipam"}}, want: "no-such-ipam"},
		{name: "mtu too small for IPv6", v6: true, extra: map[string]any{"mtu": 1000}, want: "configure"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPtpNet(t, c.v6)
			for k, v := range c.extra {
				p.Extra[k] = v
			}
			rt := harness.NewRuntime(t)
			list := p.conflist("1.1.0")
			n := harness.NewNetNS(t, "f")
			_, err := rt.Add(t, list, "ctr-f", n.Path, "eth0", nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ADD: %v, want an error naming %q", err, c.want)
			}
			t.Logf("ADD failed as it should: %v", err)
			if l := p.leases(t); len(l) != 0 {
				t.Errorf("leases left after failed ADD: %v", l)
			}
			if out := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
				t.Errorf("container interface left after failed ADD: %s", out)
			}
			p.waitNodeClean(t)
		})
	}
}

// TestPtpFaultPoints kills ADD at every step of ptp and host-local: the pod's veth, routes, gateway
// addresses, lease and masquerade rules must all go with DEL and GC. Not parallel (see killAtEveryPoint).
func TestPtpFaultPoints(t *testing.T) {
	harness.RequireRoot(t)
	p := newPtpNet(t, false)
	p.Extra["ipMasq"] = true
	c := faultChain{
		list:   p.conflist("1.1.0"),
		points: append(stepPoints("ptp", "allocate", "plug", "configure", "masquerade"), stepPoints("host-local", "allocate")...),
		leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
			out := podInterface(pod)
			out = append(out, p.nodeState(t)...)
			if l := p.leases(t); len(l) != 0 {
				out = append(out, fmt.Sprintf("leases %v", l))
			}
			if r := firewallLines(id); r != "" {
				out = append(out, "firewall lines naming the container:\n"+r)
			}
			if s := strayFiles(t, p.DataDir); len(s) != 0 {
				out = append(out, fmt.Sprintf("files in the dataDir %v", s))
			}
			return out
		},
	}
	c.killAtEveryPoint(t, "ctr-fault-ptp")
}
