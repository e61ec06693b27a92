package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/test/harness"
)

// bridgeNet describes one test network: a unique bridge, subnet(s) and dataDir, so tests run in parallel.
type bridgeNet struct {
	Name, Bridge, DataDir string
	Subnets               []string
	Extra                 map[string]any // more bridge keys
}

var subnetSeq struct {
	sync.Mutex
	n int
}

// newBridgeNet picks a bridge name and IPv4 (and, with v6, IPv6) subnets nobody else in this test
// process uses. 10.213.x.0/24 and fd13:x::/64 are test-only ranges.
func newBridgeNet(t *testing.T, v6 bool) *bridgeNet {
	t.Helper()
	subnetSeq.Lock()
	subnetSeq.n++
	x := subnetSeq.n
	subnetSeq.Unlock()
	b := &bridgeNet{
		Name:    harness.Unique("net"),
		Bridge:  harness.Unique("nlbr"),
		DataDir: t.TempDir(),
		Subnets: []string{fmt.Sprintf("10.213.%d.0/24", x)},
		Extra:   map[string]any{},
	}
	if v6 {
		b.Subnets = append(b.Subnets, fmt.Sprintf("fd13:%x::/64", x))
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(b.Bridge); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	return b
}

func (b *bridgeNet) plugin() map[string]any {
	ranges := [][]map[string]string{}
	for _, s := range b.Subnets {
		ranges = append(ranges, []map[string]string{{"subnet": s}})
	}
	p := map[string]any{
		"type":             "bridge",
		"bridge":           b.Bridge,
		"isDefaultGateway": true,
		"ipam":             map[string]any{"type": "host-local", "dataDir": b.DataDir, "ranges": ranges},
	}
	for k, v := range b.Extra {
		p[k] = v
	}
	return p
}

// conflist renders the network as a conflist of the given CNI version.
func (b *bridgeNet) conflist(cniVersion string) []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": b.Name, "plugins": []any{b.plugin()}})
	return out
}

// netconf renders the network as a single plugin config (what a runtime pipes to the binary).
func (b *bridgeNet) netconf(cniVersion string) []byte {
	p := b.plugin()
	p["cniVersion"] = cniVersion
	p["name"] = b.Name
	out, _ := json.Marshal(p)
	return out
}

// leases lists the lease files of the network's store.
func (b *bridgeNet) leases(t *testing.T) []string { return harness.Leases(t, b.DataDir, b.Name) }

// ports lists the bridge's ports in the host namespace.
func (b *bridgeNet) ports(t *testing.T) []string { return harness.BridgePorts(t, b.Bridge) }

func podAddrs(t *testing.T, r types.Result) []netip.Prefix {
	t.Helper()
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, ip := range res.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		ones, _ := ip.Address.Mask.Size()
		out = append(out, netip.PrefixFrom(a.Unmap(), ones))
	}
	return out
}

func TestBridgeTwoPodsPing(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	nsA, nsB := harness.NewNetNS(t, "pa"), harness.NewNetNS(t, "pb")
	rA, err := rt.Add(t, list, "ctr-a", nsA.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD a: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-a", nsA.Path, "eth0", nil) })
	rB, err := rt.Add(t, list, "ctr-b", nsB.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD b: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-b", nsB.Path, "eth0", nil) })

	a, bb := podAddrs(t, rA)[0], podAddrs(t, rB)[0]
	if a.Addr() == bb.Addr() {
		t.Fatalf("both pods got %s", a)
	}
	gw := a.Masked().Addr().Next()
	if err := harness.Ping(t, nsA, bb.Addr().String()); err != nil {
		t.Errorf("pod a -> pod b: %v", err)
	}
	if err := harness.Ping(t, nsB, a.Addr().String()); err != nil {
		t.Errorf("pod b -> pod a: %v", err)
	}
	if err := harness.Ping(t, nsA, gw.String()); err != nil {
		t.Errorf("pod a -> gateway: %v", err)
	}
	// Kernel state: bridge holds the gateway, two ports, pod has a default route via the gateway.
	if got := b.ports(t); len(got) != 2 {
		t.Errorf("bridge ports = %v, want 2", got)
	}
	if out := nsA.Run(t, "ip", "-4", "route", "show", "default"); !strings.Contains(out, "via "+gw.String()) {
		t.Errorf("pod a default route = %q, want via %s", out, gw)
	}
	if out, _ := exec.Command("ip", "-4", "addr", "show", "dev", b.Bridge).Output(); !strings.Contains(string(out), gw.String()+"/24") {
		t.Errorf("bridge addresses %q lack gateway %s/24", out, gw)
	}
}

// TestBridgeMACStable: the bridge's MAC (every pod's gateway MAC) does not change as pods come and go.
// A bridge without a MAC of its own takes its lowest port's, so deleting that port's pod would
// silently cut the other pods off their gateway until their neighbour entries expire.
func TestBridgeMACStable(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	brMAC := func() string {
		l, err := netlink.LinkByName(b.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().HardwareAddr.String()
	}
	type pod struct {
		ns      harness.NetNS
		id      string
		hostMAC string // its bridge port's MAC
	}
	var pods []pod
	for i := range 4 {
		p := pod{ns: harness.NewNetNS(t, "pm"), id: fmt.Sprintf("ctr-%d", i)}
		r, err := rt.Add(t, list, p.id, p.ns.Path, "eth0", nil)
		if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		res, err := current.NewResultFromResult(r)
		if err != nil {
			t.Fatal(err)
		}
		p.hostMAC = res.Interfaces[1].Mac
		pods = append(pods, p)
	}
	// Lowest port MAC first: the one a bridge without a MAC of its own would be wearing.
	slices.SortFunc(pods, func(a, b pod) int { return strings.Compare(a.hostMAC, b.hostMAC) })
	want := brMAC()
	last := pods[len(pods)-1]
	gw := podGateway(t, last.ns)
	for _, p := range pods[:len(pods)-1] {
		if err := rt.Del(t, list, p.id, p.ns.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		if got := brMAC(); got != want {
			t.Fatalf("bridge MAC changed from %s to %s when the pod on port %s left", want, got, p.hostMAC)
		}
	}
	if err := harness.Ping(t, last.ns, gw); err != nil {
		t.Errorf("last pod -> gateway after the others left: %v", err)
	}
	_ = rt.Del(t, list, last.id, last.ns.Path, "eth0", nil)
}

// podGateway returns the gateway of the pod in n: the next hop of its default route.
func podGateway(t *testing.T, n harness.NetNS) string {
	t.Helper()
	f := strings.Fields(n.Run(t, "ip", "-4", "route", "show", "default"))
	for i := range f {
		if f[i] == "via" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("pod %s has no default route", n.Name)
	return ""
}

func TestBridgeDualStack(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, true)
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	nsA, nsB := harness.NewNetNS(t, "da"), harness.NewNetNS(t, "db")
	rA, err := rt.Add(t, list, "ctr-a", nsA.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD a: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-a", nsA.Path, "eth0", nil) })
	rB, err := rt.Add(t, list, "ctr-b", nsB.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD b: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-b", nsB.Path, "eth0", nil) })
	addrsA, addrsB := podAddrs(t, rA), podAddrs(t, rB)
	if len(addrsA) != 2 || len(addrsB) != 2 {
		t.Fatalf("want one v4 and one v6 address each, got %v and %v", addrsA, addrsB)
	}
	for i := range addrsA {
		if err := harness.Ping(t, nsA, addrsB[i].Addr().String()); err != nil {
			t.Errorf("a -> %s: %v", addrsB[i], err)
		}
		if err := harness.Ping(t, nsB, addrsA[i].Masked().Addr().Next().String()); err != nil {
			t.Errorf("b -> gateway of %s: %v", addrsA[i], err)
		}
	}
	if out := nsA.Run(t, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via "+addrsA[1].Masked().Addr().Next().String()) {
		t.Errorf("IPv6 default route = %q", out)
	}
}

// Every CNI version a runtime may ask for gets a result in that version, through libcni and through
// the binary directly.
func TestBridgeEveryCNIVersion(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, v := range cniVersions {
		t.Run(v, func(t *testing.T) {
			b := newBridgeNet(t, false)
			versionRoundTrip(t, "bridge", v, b.conflist(v), b.netconf(v), b.leases)
		})
	}
}

func TestBridgeCheckDetectsDrift(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	n := harness.NewNetNS(t, "c")
	r, err := rt.Add(t, list, "ctr-c", n.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-c", n.Path, "eth0", nil) })
	if err := rt.Check(t, list, "ctr-c", n.Path, "eth0", nil); err != nil {
		t.Fatalf("CHECK on a healthy pod: %v", err)
	}
	a := podAddrs(t, r)[0]
	n.Run(t, "ip", "addr", "del", a.String(), "dev", "eth0")
	err = rt.Check(t, list, "ctr-c", n.Path, "eth0", nil)
	if err == nil || !strings.Contains(err.Error(), a.String()) {
		t.Fatalf("CHECK after removing %s: %v, want an error naming the address", a, err)
	}
}

func TestBridgeDelIdempotent(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	b.Extra["ipMasq"] = true
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")

	n := harness.NewNetNS(t, "d")
	if _, err := rt.Add(t, list, "ctr-d", n.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	for i := range 2 {
		if err := rt.Del(t, list, "ctr-d", n.Path, "eth0", nil); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	// DEL after the namespace is gone: the veth went with it, the lease must still be released.
	n2 := harness.NewNetNS(t, "e")
	if _, err := rt.Add(t, list, "ctr-e", n2.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	path := n2.Path
	n2.Delete(t)
	if err := rt.Del(t, list, "ctr-e", path, "eth0", nil); err != nil {
		t.Fatalf("DEL after netns removal: %v", err)
	}
	if l := b.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	// The kernel tears a deleted namespace down asynchronously (its veth pair goes with it a moment
	// after `ip netns del` returns): wait for the port to go rather than race it.
	deadline := time.Now().Add(5 * time.Second)
	for len(b.ports(t)) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p := b.ports(t); len(p) != 0 {
		t.Errorf("bridge ports left: %v", p)
	}
	if rules := masqRulesFor(t, b.Name); rules != "" {
		t.Errorf("masquerade rules left:\n%s", rules)
	}
}

// masqRulesFor returns the masquerade rules (iptables and nftables) that mention network.
func masqRulesFor(t *testing.T, network string) string {
	t.Helper()
	var out []string
	for _, cmd := range [][]string{{"iptables-save", "-t", "nat"}, {"ip6tables-save", "-t", "nat"}, {"nft", "list", "ruleset"}} {
		b, _ := exec.Command(cmd[0], cmd[1:]...).Output()
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, network) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

func TestBridgeConcurrentAdds(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	const pods = 32
	b := newBridgeNet(t, false)
	b.Extra["ipMasq"] = true
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	nss := make([]harness.NetNS, pods)
	for i := range nss {
		nss[i] = harness.NewNetNS(t, "k")
	}
	addrs := make([]netip.Prefix, pods)
	errs := make([]error, pods)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() {
			r, err := rt.Add(t, list, fmt.Sprintf("ctr-%d", i), nss[i].Path, "eth0", nil)
			if err != nil {
				errs[i] = err
				return
			}
			addrs[i] = podAddrs(t, r)[0]
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("ADD %d: %v", i, err)
			continue
		}
		if j, dup := seen[addrs[i].Addr()]; dup {
			t.Errorf("pods %d and %d both got %s", j, i, addrs[i])
		}
		seen[addrs[i].Addr()] = i
	}
	if len(seen) != pods {
		t.Errorf("%d distinct addresses, want %d", len(seen), pods)
	}
	if got := len(b.leases(t)); got != pods {
		t.Errorf("%d leases on disk, want %d", got, pods)
	}
	for i := range pods {
		wg.Go(func() {
			if err := rt.Del(t, list, fmt.Sprintf("ctr-%d", i), nss[i].Path, "eth0", nil); err != nil {
				t.Errorf("DEL %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if l := b.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	// The kernel tears a deleted namespace down asynchronously (its veth pair goes with it a moment
	// after `ip netns del` returns): wait for the port to go rather than race it.
	deadline := time.Now().Add(5 * time.Second)
	for len(b.ports(t)) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p := b.ports(t); len(p) != 0 {
		t.Errorf("bridge ports left: %v", p)
	}
	if rules := masqRulesFor(t, b.Name); rules != "" {
		t.Errorf("masquerade rules left:\n%s", rules)
	}
}

func TestBridgeGCReleasesLeaked(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	b.Extra["ipMasq"] = true
	gcReleasesLeaked(t, b.Name, b.conflist("1.1.0"), b.leases)
}

func TestBridgeMasqueradeBackends(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, be := range []string{"iptables", "nftables"} {
		t.Run(be, func(t *testing.T) {
			b := newBridgeNet(t, true)
			b.Extra["ipMasq"] = true
			b.Extra["ipMasqBackend"] = be
			masqRoundTrip(t, b.Name, b.conflist("1.1.0"), be)
		})
	}
}

// A failed ADD leaves nothing: here the bridge already carries another IPv4 address, so setting the
// gateway fails after the veth exists and the IP is leased.
func TestBridgeFailedAddRollsBack(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.Bridge}}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "addr", "add", "192.0.2.1/24", "dev", b.Bridge).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rt := harness.NewRuntime(t)
	list := b.conflist("1.1.0")
	n := harness.NewNetNS(t, "f")
	_, err := rt.Add(t, list, "ctr-f", n.Path, "eth0", nil)
	if err == nil || !strings.Contains(err.Error(), "forceAddress") {
		t.Fatalf("ADD on a bridge with a foreign address: %v, want an error pointing at forceAddress", err)
	}
	if l := b.leases(t); len(l) != 0 {
		t.Errorf("leases left after failed ADD: %v", l)
	}
	if p := b.ports(t); len(p) != 0 {
		t.Errorf("ports left after failed ADD: %v", p)
	}
	if out := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("container interface left after failed ADD: %s", out)
	}
}

func TestBridgeThroughCnitool(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), b.conflist("1.1.0"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := harness.NewNetNS(t, "t")
	env := []string{"NETCONFPATH=" + confDir, "CNI_IFNAME=eth0"}
	out, err := harness.Cnitool(t, env, "add", b.Name, n.Path)
	if err != nil {
		t.Fatalf("cnitool add: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "10.213.") {
		t.Errorf("cnitool add printed no address: %s", out)
	}
	if out, err := harness.Cnitool(t, env, "check", b.Name, n.Path); err != nil {
		t.Errorf("cnitool check: %v: %s", err, out)
	}
	if out, err := harness.Cnitool(t, env, "del", b.Name, n.Path); err != nil {
		t.Errorf("cnitool del: %v: %s", err, out)
	}
	if l := b.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
}

// A link that is not a bridge under the configured bridge name is the configuration's fault: code 7
// naming "bridge", and nothing of the attachment left.
func TestBridgeNameTakenByOtherLink(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	b := newBridgeNet(t, false)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: b.Bridge}, PeerName: harness.Unique("nlpr")}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	rt := harness.NewRuntime(t)
	n := harness.NewNetNS(t, "nb")
	_, err := rt.Add(t, b.conflist("1.1.0"), "ctr-nb", n.Path, "eth0", nil)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != conf.CodeInvalidConfig || !strings.HasPrefix(te.Msg, "bridge: ") || !strings.Contains(te.Msg, "is a veth, not a bridge") {
		t.Fatalf("ADD with the bridge name taken by a veth: %v; want code 7 naming \"bridge\" and what the link is", err)
	}
	if l := b.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	if out := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("container interface left: %s", out)
	}
}
