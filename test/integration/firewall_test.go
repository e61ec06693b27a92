package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall/forward"
	"github.com/netloom/netloom/test/harness"
)

// iptablesVariants are the two builds of iptables the firewall plugin must work with.
var iptablesVariants = []string{"nft", "legacy"}

// nftablesMode is a node that filters forwarding in nftables only, with the firewall's nftables backend.
const nftablesMode = "nftables"

// fwOutside is the address of the namespace standing for the world beyond the node; the node holds
// fwNodeSide on the same link and routes the pods' subnets to it.
const (
	fwNodeSide  = "192.168.251.1"
	fwOutside   = "192.168.251.2"
	fwNodeSide6 = "fd15:251::1"
	fwOutside6  = "fd15:251::2"
)

// fwNode is a node whose forward policy is drop, linked to an outside namespace that routes every pod
// subnet (10.215.0.0/16) back through the node. mode is an iptables build ("nft", "legacy"): the filter
// FORWARD policy is DROP there; or nftablesMode: the forward chain of the firewall's nftables table
// exists with policy drop before the first pod, as the node's administrator would set it; or
// firewalldMode: a firewalld runs in the node (harness.StartFirewalld), its default zone dropping.
type fwNode struct {
	mode      string
	node      harness.NetNS
	outside   harness.NetNS
	firewalld *harness.Firewalld // in firewalldMode
}

// backend is the firewall backend for the node's mode.
func (n *fwNode) backend() string {
	switch n.mode {
	case nftablesMode:
		return "nftables"
	case firewalldMode:
		return "firewalld"
	}
	return "iptables"
}

// runtime is a runtime for the node: with firewalld, its plugins reach the node's firewalld's bus.
func (n *fwNode) runtime(t *testing.T, dirs ...string) *harness.Runtime {
	rt := harness.NewRuntime(t, dirs...)
	if n.firewalld != nil {
		rt = rt.WithEnv(n.firewalld.Env()...)
	}
	return rt
}

func newFwNode(t *testing.T, mode string) *fwNode {
	t.Helper()
	harness.RequireRoot(t)
	drop := [][]string{{"iptables", "-P", "FORWARD", "DROP"}, {"ip6tables", "-P", "FORWARD", "DROP"}}
	switch mode {
	case nftablesMode:
		drop = [][]string{{"nft", "add table inet " + forward.NFTTable + "; add chain inet " + forward.NFTTable +
			" forward { type filter hook forward priority 0 ; policy drop ; }"}}
	case firewalldMode:
		drop = nil // firewalld's default zone drops what no zone accepts
	default:
		harness.UseIPTablesVariant(t, mode)
	}
	n := &fwNode{mode: mode, node: harness.NewNetNS(t, "fwn"), outside: harness.NewNetNS(t, "fwo")}
	in, out := harness.Unique("fwi"), harness.Unique("fwx")
	if _, err := n.node.Exec("ip", "link", "add", in, "type", "veth", "peer", "name", out, "netns", n.outside.Name); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", fwNodeSide + "/24", "dev", in},
		{"ip", "addr", "add", fwNodeSide6 + "/64", "dev", in, "nodad"},
		{"ip", "link", "set", in, "up"},
		{"sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"},
	} {
		n.node.Run(t, c...)
	}
	for _, c := range drop {
		n.node.Run(t, c...)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", fwOutside + "/24", "dev", out},
		{"ip", "addr", "add", fwOutside6 + "/64", "dev", out, "nodad"},
		{"ip", "link", "set", out, "up"},
		{"ip", "route", "add", "10.215.0.0/16", "via", fwNodeSide},
		{"ip", "-6", "route", "add", "fd15::/16", "via", fwNodeSide6},
	} {
		n.outside.Run(t, c...)
	}
	if mode == firewalldMode {
		n.firewalld = harness.StartFirewalld(t, n.node)
	}
	return n
}

// rules is the node's filter tables (IPv4, then IPv6) as iptables-save prints them, or the firewall's
// nftables table.
func (n *fwNode) rules(t *testing.T) string {
	t.Helper()
	if n.mode == nftablesMode {
		return n.node.Run(t, "nft", "list", "table", "inet", forward.NFTTable)
	}
	return n.node.Run(t, "iptables-save", "-t", "filter") + n.node.Run(t, "ip6tables-save", "-t", "filter")
}

// fwNet is one bridge network on a node, with the firewall plugin chained after the bridge.
type fwNet struct {
	Name, Bridge, DataDir, Subnet string
	Subnet6                       string         // "" for an IPv4-only network
	Firewall                      map[string]any // the firewall plugin's keys
}

var fwSubnetSeq struct {
	sync.Mutex
	n int
}

func newFwNet(t *testing.T, n *fwNode, firewall map[string]any) *fwNet {
	t.Helper()
	fwSubnetSeq.Lock()
	fwSubnetSeq.n++
	x := fwSubnetSeq.n
	fwSubnetSeq.Unlock()
	fw := map[string]any{"type": "firewall", "backend": n.backend()}
	for k, v := range firewall {
		fw[k] = v
	}
	return &fwNet{Name: harness.Unique("fwnet"), Bridge: harness.Unique("fwbr"), DataDir: t.TempDir(),
		Subnet: fmt.Sprintf("10.215.%d.0/24", x%250), Firewall: fw}
}

// dualStack gives the network an IPv6 subnet too.
func (f *fwNet) dualStack() *fwNet {
	f.Subnet6 = fmt.Sprintf("fd15:%x::/64", fwSubnetSeq.n)
	return f
}

func (f *fwNet) conflist(cniVersion string) []byte {
	ranges := [][]map[string]string{{{"subnet": f.Subnet}}}
	routes := []map[string]string{{"dst": "0.0.0.0/0"}}
	if f.Subnet6 != "" {
		ranges = append(ranges, []map[string]string{{"subnet": f.Subnet6}})
		routes = append(routes, map[string]string{"dst": "::/0"})
	}
	bridge := map[string]any{
		"type": "bridge", "bridge": f.Bridge, "isGateway": true,
		"ipam": map[string]any{"type": "host-local", "dataDir": f.DataDir, "ranges": ranges, "routes": routes},
	}
	b, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": f.Name, "plugins": []any{bridge, f.Firewall}})
	return b
}

// record is the firewall's file for the attachment id, eth0.
func (f *fwNet) record(id string) string {
	return filepath.Join(forward.DefaultStateDir, f.Name, id+"@eth0")
}

// fwPod is one attachment: its namespace, ID, IPv4 address and IPv6 address ("" when none).
type fwPod struct {
	ns  harness.NetNS
	id  string
	ip  string
	ip6 string
}

// addFwPod runs the conflist's ADD for a new pod on the node through rt and returns it.
func addFwPod(t *testing.T, n *fwNode, rt *harness.Runtime, list []byte) fwPod {
	t.Helper()
	p := fwPod{ns: harness.NewNetNS(t, "fwp"), id: harness.Unique("fwpod")}
	var res types.Result
	err := n.node.Do(func() (err error) { res, err = rt.Add(t, list, p.id, p.ns.Path, "eth0", nil); return err })
	if err != nil {
		t.Fatalf("ADD %s: %v", p.id, err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil || len(r.IPs) == 0 {
		t.Fatalf("ADD %s: result %v: %v", p.id, res, err)
	}
	p.ip = r.IPs[0].Address.IP.String()
	for _, ipc := range r.IPs[1:] {
		if ipc.Address.IP.To4() == nil {
			p.ip6 = ipc.Address.IP.String()
		}
	}
	t.Cleanup(func() { _ = n.node.Do(func() error { return rt.Del(t, list, p.id, p.ns.Path, "eth0", nil) }) })
	return p
}

func (n *fwNode) del(t *testing.T, rt *harness.Runtime, list []byte, p fwPod) {
	t.Helper()
	if err := n.node.Do(func() error { return rt.Del(t, list, p.id, p.ns.Path, "eth0", nil) }); err != nil {
		t.Fatalf("DEL %s: %v", p.id, err)
	}
}

func (n *fwNode) check(rt *harness.Runtime, t *testing.T, list []byte, p fwPod) error {
	return n.node.Do(func() error { return rt.Check(t, list, p.id, p.ns.Path, "eth0", nil) })
}

// podRules are the reference's two rules for ip, as iptables-save prints them.
func podRules(ip string) []string {
	return []string{
		fmt.Sprintf("-A CNI-FORWARD -d %s/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", ip),
		fmt.Sprintf("-A CNI-FORWARD -s %s/32 -j ACCEPT", ip),
	}
}

// pingSoon is harness.Ping tried three times: a new pod's IPv6 address, or the bridge port, may not be
// ready for the first echo request. For pings that must get through; one that must not is tried once.
func pingSoon(t *testing.T, from harness.NetNS, addr string) error {
	t.Helper()
	var err error
	for range 3 {
		if err = harness.Ping(t, from, addr); err == nil {
			return nil
		}
	}
	return err
}

// requireNoPodRules fails t when the node's rules still mention ip (IPv4 or IPv6).
func requireNoPodRules(t *testing.T, n *fwNode, ip string) {
	t.Helper()
	if ip == "" {
		return
	}
	if r := n.rules(t); strings.Contains(r, ip+"/32") || strings.Contains(r, ip+"/128") {
		t.Errorf("rules for %s left on the node:\n%s", ip, r)
	}
}

// The node drops forwarded traffic; a pod reaches the outside only through the firewall plugin's rules:
// delete them and the ping fails (and CHECK says which rule is missing). DEL removes the pod's rules
// twice over, and leaves the chains and the administrator's rules in CNI-ADMIN.
func TestFirewallOpensForward(t *testing.T) {
	for _, variant := range iptablesVariants {
		t.Run(variant, func(t *testing.T) {
			n := newFwNode(t, variant)
			net := newFwNet(t, n, nil)
			list := net.conflist("1.1.0")
			rt := harness.NewRuntime(t)
			p := addFwPod(t, n, rt, list)
			rules := n.rules(t)
			for _, want := range append(podRules(p.ip),
				`-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD`,
				`-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN`) {
				if !strings.Contains(rules, want+"\n") {
					t.Errorf("missing %q in:\n%s", want, rules)
				}
			}
			if _, err := os.Stat(net.record(p.id)); err != nil {
				t.Errorf("no record of the attachment: %v", err)
			}
			if err := pingSoon(t, p.ns, fwOutside); err != nil {
				t.Fatalf("pod cannot reach the outside through the firewall: %v", err)
			}
			if err := n.check(rt, t, list, p); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			if err := n.node.Do(func() error { return rt.Status(t, list) }); err != nil {
				t.Errorf("STATUS: %v", err)
			}

			// Without the pod's rule the node's DROP policy wins.
			n.node.Run(t, "iptables", "-D", "CNI-FORWARD", "-s", p.ip+"/32", "-j", "ACCEPT")
			if err := harness.Ping(t, p.ns, fwOutside); err == nil {
				t.Error("the pod reaches the outside without its firewall rule: the node's FORWARD DROP is not in force")
			}
			if err := n.check(rt, t, list, p); err == nil || !strings.Contains(err.Error(), p.ip+"/32") {
				t.Errorf("CHECK without the pod's rule: %v, want it named", err)
			}
			n.node.Run(t, "iptables", "-A", "CNI-FORWARD", "-s", p.ip+"/32", "-j", "ACCEPT")

			n.node.Run(t, "iptables", "-A", "CNI-ADMIN", "-s", "198.51.100.0/24", "-j", "DROP")
			n.del(t, rt, list, p)
			n.del(t, rt, list, p)
			requireNoPodRules(t, n, p.ip)
			if r := n.rules(t); !strings.Contains(r, "-A CNI-ADMIN -s 198.51.100.0/24 -j DROP") {
				t.Errorf("DEL touched the admin chain:\n%s", r)
			}
			if _, err := os.Stat(net.record(p.id)); !os.IsNotExist(err) {
				t.Errorf("record after DEL: %v", err)
			}
		})
	}
}

// ingressPolicy same-bridge drops traffic between two isolated bridges and lets it through within
// one; isolated drops it within the bridge too. Both still reach the outside.
func TestFirewallIngressPolicy(t *testing.T) {
	for _, mode := range append(iptablesVariants, nftablesMode) {
		for _, policy := range []string{"same-bridge", "isolated"} {
			t.Run(mode+"/"+policy, func(t *testing.T) {
				n := newFwNode(t, mode)
				a := newFwNet(t, n, map[string]any{"ingressPolicy": policy})
				b := newFwNet(t, n, map[string]any{"ingressPolicy": policy})
				rt := harness.NewRuntime(t)
				a1 := addFwPod(t, n, rt, a.conflist("1.0.0"))
				a2 := addFwPod(t, n, rt, a.conflist("1.0.0"))
				b1 := addFwPod(t, n, rt, b.conflist("1.0.0"))
				for _, p := range []fwPod{a1, b1} {
					if err := pingSoon(t, p.ns, fwOutside); err != nil {
						t.Errorf("%s cannot reach the outside: %v", p.ip, err)
					}
				}
				if err := harness.Ping(t, a1.ns, b1.ip); err == nil {
					t.Errorf("%s reaches %s on the other bridge", a1.ip, b1.ip)
				}
				if err := harness.Ping(t, b1.ns, a1.ip); err == nil {
					t.Errorf("%s reaches %s on the other bridge", b1.ip, a1.ip)
				}
				err := harness.Ping(t, a1.ns, a2.ip)
				if policy == "same-bridge" && err != nil {
					err = pingSoon(t, a1.ns, a2.ip)
				}
				if policy == "same-bridge" && err != nil {
					t.Errorf("%s cannot reach %s on its own bridge: %v", a1.ip, a2.ip, err)
				}
				if policy == "isolated" && err == nil {
					t.Errorf("%s reaches %s on its own isolated bridge", a1.ip, a2.ip)
				}
				rules := n.rules(t)
				want := fmt.Sprintf(`-A CNI-ISOLATION-STAGE-2 -o %s -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP`, a.Bridge)
				if mode == nftablesMode {
					want = fmt.Sprintf(`oifname "%s" drop comment "bridge %s"`, a.Bridge, a.Bridge)
				}
				if !strings.Contains(rules, want) {
					t.Errorf("missing %q in:\n%s", want, rules)
				}
				for _, p := range []fwPod{a1, a2} {
					if err := n.check(rt, t, a.conflist("1.0.0"), p); err != nil {
						t.Errorf("CHECK %s: %v", p.id, err)
					}
				}
				n.del(t, rt, a.conflist("1.0.0"), a1)
				n.del(t, rt, a.conflist("1.0.0"), a2)
				n.del(t, rt, b.conflist("1.0.0"), b1)
				for _, p := range []fwPod{a1, a2, b1} {
					requireNoPodRules(t, n, p.ip)
				}
			})
		}
	}
}

// A pod added by the reference firewall plugin is CHECKed and DELeted by netloom's, and one added by
// netloom's by the reference: the rules are the same, so nothing is left either way.
func TestFirewallReferenceInterop(t *testing.T) {
	refDir := harness.ReferencePlugin(t, "firewall")
	for _, variant := range iptablesVariants {
		t.Run(variant, func(t *testing.T) {
			n := newFwNode(t, variant)
			net := newFwNet(t, n, map[string]any{"ingressPolicy": "same-bridge"})
			list := net.conflist("1.0.0")
			netloom := harness.NewRuntime(t)
			// The reference's firewall, netloom's bridge and host-local, one result cache for both.
			reference := netloom.WithPath(t, append([]string{refDir}, netloom.Path...)...)

			p := addFwPod(t, n, reference, list)
			if err := pingSoon(t, p.ns, fwOutside); err != nil {
				t.Errorf("reference-added pod cannot reach the outside: %v", err)
			}
			if err := n.check(netloom, t, list, p); err != nil {
				t.Errorf("netloom CHECK of the reference's pod: %v", err)
			}
			n.del(t, netloom, list, p)
			requireNoPodRules(t, n, p.ip)

			q := addFwPod(t, n, netloom, list)
			if err := n.check(reference, t, list, q); err != nil {
				t.Errorf("reference CHECK of netloom's pod: %v", err)
			}
			n.del(t, reference, list, q)
			requireNoPodRules(t, n, q.ip)
			// The reference's DEL leaves netloom's record; netloom's GC (cniVersion 1.1.0) forgets it.
			if err := n.node.Do(func() error { return netloom.GCOnly(t, net.conflist("1.1.0"), []types.GCAttachment{}) }); err != nil {
				t.Errorf("GC: %v", err)
			}
			if _, err := os.Stat(net.record(q.id)); !os.IsNotExist(err) {
				t.Errorf("record after GC: %v", err)
			}
		})
	}
}

// Every CNI version: ADD opens, CHECK (0.4.0 on) passes, DEL (which before 0.4.0 carries no
// prevResult: the record says which rules) leaves nothing.
func TestFirewallEveryCNIVersion(t *testing.T) {
	n := newFwNode(t, "nft")
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			net := newFwNet(t, n, nil)
			list := net.conflist(v)
			rt := harness.NewRuntime(t)
			p := addFwPod(t, n, rt, list)
			if err := pingSoon(t, p.ns, fwOutside); err != nil {
				t.Errorf("cniVersion %s: pod cannot reach the outside: %v", v, err)
			}
			if v >= "0.4.0" {
				if err := n.check(rt, t, list, p); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			n.del(t, rt, list, p)
			n.del(t, rt, list, p)
			requireNoPodRules(t, n, p.ip)
			if _, err := os.Stat(net.record(p.id)); !os.IsNotExist(err) {
				t.Errorf("record after DEL: %v", err)
			}
		})
	}
}

// GC removes the rules of the attachments the runtime no longer lists, and only theirs.
func TestFirewallGC(t *testing.T) {
	for _, mode := range []string{"nft", nftablesMode} {
		t.Run(mode, func(t *testing.T) {
			n := newFwNode(t, mode)
			net := newFwNet(t, n, nil)
			list := net.conflist("1.1.0")
			rt := harness.NewRuntime(t)
			keep := addFwPod(t, n, rt, list)
			lost := addFwPod(t, n, rt, list)
			valid := []types.GCAttachment{{ContainerID: keep.id, IfName: "eth0"}}
			if err := n.node.Do(func() error { return rt.GCOnly(t, list, valid) }); err != nil {
				t.Fatalf("GC: %v", err)
			}
			requireNoPodRules(t, n, lost.ip)
			if r := n.rules(t); !strings.Contains(r, keep.ip+"/32") {
				t.Errorf("GC removed the listed pod's rules:\n%s", r)
			}
			if _, err := os.Stat(net.record(lost.id)); !os.IsNotExist(err) {
				t.Errorf("record of the lost pod after GC: %v", err)
			}
			if err := pingSoon(t, keep.ns, fwOutside); err != nil {
				t.Errorf("listed pod after GC: %v", err)
			}
			n.del(t, rt, list, keep)
			requireNoPodRules(t, n, keep.ip)
		})
	}
}

// Bad input comes back as a CNI error with the right code, naming the key.
func TestFirewallBadInput(t *testing.T) {
	harness.RequireRoot(t)
	node := harness.NewNetNS(t, "fwb")
	// The pod's namespace is its own: a plugin refuses an ADD into the namespace it runs in.
	pod := harness.NewNetNS(t, "fwbp")
	const prev = `"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"cni0"}],"ips":[{"address":"10.215.250.2/24","interface":0}]}`
	const noIfaces = `"prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.215.250.2/24"}]}`
	for _, tc := range []struct {
		name, cmd, extra string
		code             uint
		field            string
	}{
		{"no prevResult", "ADD", ``, conf.CodeInvalidConfig, "prevResult"},
		{"CHECK without prevResult", "CHECK", ``, conf.CodeInvalidConfig, "prevResult"},
		{"unknown backend", "ADD", `,"backend":"pf",` + prev, conf.CodeInvalidConfig, "backend"},
		{"firewalld without firewalld", "ADD", `,"backend":"firewalld",` + prev, conf.CodeNotAvailable, "firewalld"},
		{"unknown ingress policy", "ADD", `,"ingressPolicy":"closed",` + prev, conf.CodeInvalidConfig, "ingressPolicy"},
		{"isolation without a bridge", "ADD", `,"ingressPolicy":"isolated",` + noIfaces, conf.CodeInvalidConfig, "ingressPolicy"},
		{"admin chain FORWARD", "ADD", `,"iptablesAdminChainName":"FORWARD",` + prev, conf.CodeInvalidConfig, "iptablesAdminChainName"},
		{"bad prevResult address", "ADD", `,"prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}`, conf.CodeInvalidConfig, "prevResult"},
		{"not JSON", "ADD", `,`, conf.CodeDecodingFailure, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdin := []byte(`{"cniVersion":"1.0.0","name":"fwbad","type":"firewall"` + tc.extra + `}`)
			env := map[string]string{"CNI_COMMAND": tc.cmd, "CNI_CONTAINERID": "fwbad", "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
			var out []byte
			// The plugin's non-zero exit is expected; what it printed is checked below.
			if err := node.Do(func() error { out, _ = harness.RunPlugin(t, "firewall", env, stdin); return nil }); err != nil {
				t.Fatal(err)
			}
			var e types.Error
			if jerr := json.Unmarshal(out, &e); jerr != nil || e.Code != tc.code || !strings.Contains(e.Msg, tc.field) {
				t.Errorf("got %s, want code %d naming %q", out, tc.code, tc.field)
			}
		})
	}
}

// Killing a dual-stack ADD at each of the firewall's steps and between its IPv4 and IPv6 iptables
// changes, then DEL (without prevResult: libcni caches nothing
// for a failed ADD) and GC, leaves no pod rule, no record and no lease.
func TestFirewallFaultPoints(t *testing.T) {
	n := newFwNode(t, "nft")
	net := newFwNet(t, n, map[string]any{"ingressPolicy": "same-bridge"}).dualStack()
	faultChain{
		list:   net.conflist("1.1.0"),
		points: append(stepPoints("firewall", "record", "open", "isolate"), "firewall:"+forward.FaultIPv6),
		on:     &n.node,
		leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
			var left []string
			for _, l := range strings.Split(n.rules(t), "\n") {
				if strings.HasPrefix(l, "-A CNI-FORWARD -") && !strings.Contains(l, "-j CNI-ADMIN") {
					left = append(left, "rule "+l)
				}
			}
			if _, err := os.Stat(net.record(id)); err == nil {
				left = append(left, "record "+net.record(id))
			}
			for _, l := range harness.Leases(t, net.DataDir, net.Name) {
				left = append(left, "lease "+l)
			}
			return append(left, podInterface(pod)...)
		},
	}.killAtEveryPoint(t, "fwflt")
}

// The nftables backend on a node that filters forwarding in nftables only (the firewall table's forward
// chain has policy drop): the pod reaches the outside only through its rules, CHECK notices a missing
// one, and DEL removes them twice over, leaving the chain's policy and the administrator's rules.
func TestFirewallNFTables(t *testing.T) {
	n := newFwNode(t, nftablesMode)
	net := newFwNet(t, n, nil)
	list := net.conflist("1.1.0")
	rt := harness.NewRuntime(t)
	p := addFwPod(t, n, rt, list)
	rules := n.rules(t)
	for _, want := range []string{
		"policy drop;",
		`jump isolation-stage-1 comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)"`,
		`jump admin comment "CNI firewall plugin admin overrides"`,
		fmt.Sprintf(`ip daddr %s ct state established,related accept comment "%s/32"`, p.ip, p.ip),
		fmt.Sprintf(`ip saddr %s accept comment "%s/32"`, p.ip, p.ip),
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("missing %q in:\n%s", want, rules)
		}
	}
	if err := pingSoon(t, p.ns, fwOutside); err != nil {
		t.Fatalf("pod cannot reach the outside through the firewall: %v", err)
	}
	if err := n.check(rt, t, list, p); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := n.node.Do(func() error { return rt.Status(t, list) }); err != nil {
		t.Errorf("STATUS: %v", err)
	}

	// Without the pod's outbound rule the chain's drop policy wins.
	handle := ""
	for _, l := range strings.Split(n.node.Run(t, "nft", "-a", "list", "chain", "inet", forward.NFTTable, "forward"), "\n") {
		if strings.Contains(l, "ip saddr "+p.ip+" accept") {
			handle = l[strings.LastIndex(l, " ")+1:]
		}
	}
	n.node.Run(t, "nft", "delete", "rule", "inet", forward.NFTTable, "forward", "handle", handle)
	if err := harness.Ping(t, p.ns, fwOutside); err == nil {
		t.Error("the pod reaches the outside without its firewall rule: the drop policy is not in force")
	}
	if err := n.check(rt, t, list, p); err == nil || !strings.Contains(err.Error(), p.ip+"/32") {
		t.Errorf("CHECK without the pod's rule: %v, want it named", err)
	}

	n.node.Run(t, "nft", "add", "rule", "inet", forward.NFTTable, "admin", "ip", "saddr", "198.51.100.0/24", "drop")
	n.del(t, rt, list, p)
	n.del(t, rt, list, p)
	requireNoPodRules(t, n, p.ip)
	rules = n.rules(t)
	if !strings.Contains(rules, "ip saddr 198.51.100.0/24 drop") || !strings.Contains(rules, "policy drop;") {
		t.Errorf("DEL touched the admin chain or the policy:\n%s", rules)
	}
	if _, err := os.Stat(net.record(p.id)); !os.IsNotExist(err) {
		t.Errorf("record after DEL: %v", err)
	}
}

// Dual-stack pods reach the outside over IPv4 and IPv6 only through the firewall (ip6tables, or the
// nftables table for both families); DEL removes the rules of both families.
func TestFirewallDualStack(t *testing.T) {
	for _, mode := range append(iptablesVariants, nftablesMode) {
		t.Run(mode, func(t *testing.T) {
			n := newFwNode(t, mode)
			net := newFwNet(t, n, nil).dualStack()
			list := net.conflist("1.1.0")
			rt := harness.NewRuntime(t)
			p := addFwPod(t, n, rt, list)
			if p.ip6 == "" {
				t.Fatal("no IPv6 address")
			}
			for _, dst := range []string{fwOutside, fwOutside6} {
				if err := pingSoon(t, p.ns, dst); err != nil {
					t.Errorf("pod cannot reach %s through the firewall: %v", dst, err)
				}
			}
			if r := n.rules(t); !strings.Contains(r, p.ip6+"/128") {
				t.Errorf("no rule for %s:\n%s", p.ip6, r)
			}
			if err := n.check(rt, t, list, p); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			n.del(t, rt, list, p)
			n.del(t, rt, list, p)
			requireNoPodRules(t, n, p.ip)
			requireNoPodRules(t, n, p.ip6)
		})
	}
}

// Pods added at once on a fresh node: every one is opened, and the chains and jumps exist once (a
// second ADD that planned them too starts over from a fresh read when the kernel refuses its change).
func TestFirewallConcurrentAdds(t *testing.T) {
	const pods = 4
	for _, mode := range []string{"nft", nftablesMode} {
		t.Run(mode, func(t *testing.T) {
			n := newFwNode(t, mode)
			net := newFwNet(t, n, nil)
			list := net.conflist("1.1.0")
			rt := harness.NewRuntime(t)
			ps := make([]fwPod, pods)
			errs := make([]error, pods)
			var wg sync.WaitGroup
			for i := range ps {
				ps[i] = fwPod{ns: harness.NewNetNS(t, "fwc"), id: harness.Unique("fwcpod")}
				t.Cleanup(func() { _ = n.node.Do(func() error { return rt.Del(t, list, ps[i].id, ps[i].ns.Path, "eth0", nil) }) })
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = n.node.Do(func() error { _, err := rt.Add(t, list, ps[i].id, ps[i].ns.Path, "eth0", nil); return err })
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("ADD %d: %v", i, err)
				}
			}
			rules := n.rules(t)
			// Each pod's address appears in its two rules, in nftables in their comments too.
			jump, admin, mentions := `-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD`, "-j CNI-ADMIN", 2
			if mode == nftablesMode {
				jump, admin, mentions = "jump isolation-stage-1", "jump admin", 4
			}
			if strings.Count(rules, jump) != 1 || strings.Count(rules, admin) != 1 || strings.Count(rules, "10.215.") != mentions*pods {
				t.Errorf("after %d concurrent ADDs:\n%s", pods, rules)
			}
			for _, p := range ps {
				if err := pingSoon(t, p.ns, fwOutside); err != nil {
					t.Errorf("pod %s: %v", p.id, err)
				}
				n.del(t, rt, list, p)
			}
			if r := n.rules(t); strings.Contains(r, "10.215.") {
				t.Errorf("rules left:\n%s", r)
			}
		})
	}
}
