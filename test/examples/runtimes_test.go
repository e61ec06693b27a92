package examples

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/netloom/netloom/test/harness"
)

// runtimesDir holds the configs that container runtimes and Kubernetes distributions write themselves
// (see its README): the real test of a drop-in.
const runtimesDir = examplesDir + "/runtimes"

// lanPeer says, for a config whose pods sit on a LAN of their own (Multus' secondary networks), which
// address a machine on that LAN holds, so a pod has someone to ping. The pods of every other config
// (bridge, ptp) are routed by the node.
type lanPeer struct {
	addr   string // with prefix length
	vlanID int    // the peer node puts it on eth0.<vlanID>, else on eth0
	onNode bool   // on the pod's own node, on the far end of the veth the config names as device
	dhcp   bool   // it is the LAN's DHCP server (dnsmasq) too, and addr's subnet is what it serves
}

var lanPeers = map[string]lanPeer{
	"multus-macvlan.conf":            {addr: "192.168.1.1/24"},
	"multus-macvlan-dhcp.conf":       {addr: "192.168.7.1/24", dhcp: true},
	"multus-macvlan-tuning.conflist": {addr: "10.10.0.254/24"},
	"multus-ipvlan.conf":             {addr: "192.168.2.1/24"},
	"multus-vlan.conf":               {addr: "192.168.5.1/24", vlanID: 5},
	"multus-host-device.conf":        {addr: "192.168.3.1/24", onNode: true},
}

// Capability arguments a runtime passes (kubelet's hostPort and bandwidth annotations).
const (
	containerPort = 8080
	shapedRate    = 8_000_000 // bits/s, both directions
	shapedBurst   = 400_000   // bits
)

// TestRuntimeConflists runs every config in conflist-examples/runtimes/ as its runtime wrote it, with
// only netloom's plugins in CNI_PATH, on a node (a namespace of a two-node cluster; the other node is
// "the outside"). Only host-local's dataDir is moved to the test's own directory. For each plugin of the
// chain the test proves it did its job: pods talk to each other and to the other node (whose route to
// the pod subnet stands in for the cluster's), a hostPort reaches its pod from the other node, a node
// whose FORWARD policy is DROP lets pods out thanks to firewall, tuning's sysctls are set, bandwidth's
// qdiscs exist and hold an iperf3 flow to the rate asked, a LAN attachment reaches a peer on its LAN.
// Then CHECK where the config's version has it, DEL twice, and nothing of the pods left on the node:
// lease, link, ifb, or any iptables or nftables rule naming a pod's address or container ID.
func TestRuntimeConflists(t *testing.T) {
	harness.RequireRoot(t)
	files, err := filepath.Glob(filepath.Join(runtimesDir, "*.conf*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no configs in %s", runtimesDir)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			runRuntimeConflist(t, filepath.Base(file), raw)
		})
	}
}

// runtimeRun is one config on its cluster.
type runtimeRun struct {
	file     string
	conf     []byte
	version  string
	types    map[string]bool // the chain's plugin types
	ipam     []map[string]any
	stores   []string // host-local dataDirs (moved here)
	dhcpSock string   // the dhcp daemon's socket (moved here), when an IPAM is dhcp
	network  string

	node, outside *harness.Node
	peer          *lanPeer
	rt            *harness.Runtime
	dhcpLAN       *harness.DHCPLAN // the peer's dnsmasq, for a dhcp config
}

func runRuntimeConflist(t *testing.T, file string, raw []byte) {
	r := &runtimeRun{file: file, types: map[string]bool{}}
	if p, ok := lanPeers[file]; ok {
		r.peer = &p
	}
	r.load(t, raw)
	c := harness.NewCluster(t, harness.ClusterSpec{Local: 2})
	r.node, r.outside = c.Nodes[0], c.Nodes[1]
	r.requireKernel(t)
	r.rt = harness.NewRuntime(t)
	r.prepareNode(t)

	pods := r.addPods(t)
	r.proveTraffic(t, pods)
	if ok, _ := version.GreaterThanOrEqualTo(r.version, "0.4.0"); ok {
		for _, p := range pods {
			if err := r.do(func() error { return r.rt.Check(t, r.conf, p.containerID, p.ns.Path, "eth0", p.capArgs) }); err != nil {
				t.Errorf("CHECK %s: %v", p.containerID, err)
			}
		}
	}
	for _, p := range pods {
		for i := range 2 {
			if err := r.do(func() error { return r.rt.Del(t, r.conf, p.containerID, p.ns.Path, "eth0", p.capArgs) }); err != nil {
				t.Errorf("DEL #%d %s: %v", i+1, p.containerID, err)
			}
		}
	}
	r.requireNothingLeft(t, pods)
}

// load parses the config, moves host-local's store into the test and notes the chain's plugins.
func (r *runtimeRun) load(t *testing.T, raw []byte) {
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatalf("%s is not JSON: %v", r.file, err)
	}
	r.version, _ = top["cniVersion"].(string)
	if _, ok := top["name"]; !ok {
		// A Multus NetworkAttachmentDefinition's config has no name: Multus gives it the object's.
		top["name"] = strings.TrimSuffix(strings.TrimSuffix(r.file, ".conf"), ".conflist")
	}
	r.network, _ = top["name"].(string)
	plugins := []any{top}
	if list, ok := top["plugins"].([]any); ok {
		plugins = list
	}
	for _, p := range plugins {
		plugin, _ := p.(map[string]any)
		typ, _ := plugin["type"].(string)
		r.types[typ] = true
		ipam, ok := plugin["ipam"].(map[string]any)
		if !ok {
			continue
		}
		r.ipam = append(r.ipam, ipam)
		switch ipam["type"] {
		case "host-local":
			dir := t.TempDir()
			ipam["dataDir"] = dir
			r.stores = append(r.stores, dir)
		case "dhcp":
			// A daemon of the test's own, not the node's /run/cni/dhcp.sock.
			r.dhcpSock = filepath.Join(t.TempDir(), "dhcp.sock")
			ipam["daemonSocketPath"] = r.dhcpSock
		}
	}
	var err error
	if r.conf, err = json.Marshal(top); err != nil {
		t.Fatal(err)
	}
}

// do runs f on the pods' node.
func (r *runtimeRun) do(f func() error) error { return r.node.Do(f) }

// requireKernel skips (on a kernel without it; the VM lane runs it) a config that needs ipvlan or 802.1q.
func (r *runtimeRun) requireKernel(t *testing.T) {
	probe := map[string][]string{
		"ipvlan": {"type", "ipvlan", "mode", "l2"},
		"vlan":   {"type", "vlan", "id", "4000"},
	}
	for typ, args := range probe {
		if !r.types[typ] {
			continue
		}
		_, err := r.node.Exec(append([]string{"ip", "link", "add", "link", "eth0", "name", "nlprobe"}, args...)...)
		if err == nil {
			r.node.Run(t, "ip", "link", "del", "nlprobe")
		}
		harness.RequireKernelFeature(t, typ, err == nil)
	}
}

// prepareNode makes the node what the config expects: FORWARD policy DROP where firewall must let the
// pods out, the host device the config names, the LAN peer.
func (r *runtimeRun) prepareNode(t *testing.T) {
	if r.types["firewall"] {
		for _, cmd := range []string{"iptables", "ip6tables"} {
			r.node.Run(t, cmd, "-P", "FORWARD", "DROP")
		}
	}
	if r.peer == nil {
		return
	}
	switch {
	case r.peer.dhcp: // the LAN's DHCP server, and the dhcp daemon on the node
		r.dhcpLAN = harness.ServeDHCP(t, r.outside.NetNS, "eth0", netip.MustParsePrefix(r.peer.addr))
		harness.StartDHCPDaemon(t, r.node.NetNS, "dhcp", "-socketpath", r.dhcpSock)
	case r.peer.onNode: // host-device: the device is one end of a veth pair, the peer the other
		r.node.Run(t, "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "hdpeer")
		r.node.Run(t, "ip", "addr", "add", r.peer.addr, "dev", "hdpeer")
		r.node.Run(t, "ip", "link", "set", "hdpeer", "up")
	case r.peer.vlanID != 0:
		dev := fmt.Sprintf("eth0.%d", r.peer.vlanID)
		r.outside.Run(t, "ip", "link", "add", "link", "eth0", "name", dev, "type", "vlan", "id", strconv.Itoa(r.peer.vlanID))
		r.outside.Run(t, "ip", "addr", "add", r.peer.addr, "dev", dev)
		r.outside.Run(t, "ip", "link", "set", dev, "up")
	default:
		r.outside.Run(t, "ip", "addr", "add", r.peer.addr, "dev", "eth0")
	}
}

// runtimePod is one attachment of the config.
type runtimePod struct {
	pod
	capArgs  map[string]any
	hostPort int
}

// addPods attaches the pods: two, or one when the config hands out a fixed address (static IPAM) or
// moves the node's only device.
func (r *runtimeRun) addPods(t *testing.T) []*runtimePod {
	n := 2
	if r.types["host-device"] || r.usesStatic() {
		n = 1
	}
	var pods []*runtimePod
	for i := range n {
		p := &runtimePod{pod: pod{ns: harness.NewNetNS(t, "rtc"), containerID: harness.Unique("ctr-")}, capArgs: map[string]any{}}
		if r.types["portmap"] {
			p.hostPort = 18080 + i
			p.capArgs["portMappings"] = []map[string]any{{"hostPort": p.hostPort, "containerPort": containerPort, "protocol": "tcp"}}
		}
		if r.types["bandwidth"] {
			p.capArgs["bandwidth"] = map[string]any{"ingressRate": shapedRate, "ingressBurst": shapedBurst, "egressRate": shapedRate, "egressBurst": shapedBurst}
		}
		var res types.Result
		err := r.do(func() (err error) {
			res, err = r.rt.Add(t, r.conf, p.containerID, p.ns.Path, "eth0", p.capArgs)
			return err
		})
		if err != nil {
			t.Fatalf("ADD %s: %v\nconfig: %s", p.containerID, err, r.conf)
		}
		t.Cleanup(func() {
			_ = r.do(func() error { return r.rt.Del(t, r.conf, p.containerID, p.ns.Path, "eth0", p.capArgs) })
		})
		if res.Version() != r.version {
			t.Errorf("ADD %s: result version %s, want the config's %s", p.containerID, res.Version(), r.version)
		}
		if p.result, err = current.NewResultFromResult(res); err != nil {
			t.Fatal(err)
		}
		if len(p.result.IPs) == 0 {
			t.Fatalf("ADD %s: result has no IPs: %+v", p.containerID, p.result)
		}
		t.Logf("%s: %v", p.containerID, p.addrs())
		pods = append(pods, p)
	}
	return pods
}

func (r *runtimeRun) usesStatic() bool {
	for _, ipam := range r.ipam {
		if ipam["type"] == "static" {
			return true
		}
	}
	return false
}

// proveTraffic shows each plugin of the chain did its job.
func (r *runtimeRun) proveTraffic(t *testing.T, pods []*runtimePod) {
	if r.peer != nil {
		peer := strings.Split(r.peer.addr, "/")[0]
		for _, p := range pods {
			if err := harness.Ping(t, p.ns, peer); err != nil {
				t.Errorf("%s -> LAN peer %s: %v", p.containerID, peer, err)
			}
		}
	} else {
		r.routeToPods(t, pods)
		for _, p := range pods {
			for _, a := range p.addrs() {
				dst := r.outside.Addr.Addr()
				if a.Is6() {
					dst = r.outside.Addr6.Addr()
				}
				if err := harness.Ping(t, p.ns, dst.String()); err != nil {
					t.Errorf("%s (%s) -> the other node %s: %v", p.containerID, a, dst, err)
				}
			}
		}
	}
	if len(pods) == 2 {
		plain := make([]*pod, len(pods))
		for i, p := range pods {
			plain[i] = &p.pod
		}
		requireTraffic(t, plain)
	}
	if r.types["portmap"] {
		for i, p := range pods {
			harness.Serve(t, &p.ns, "tcp", containerPort, p.containerID)
			// From the other node; on a node whose FORWARD policy is DROP, from the other pod instead:
			// a new connection from outside to a hostPort is forwarded to the pod, and firewall (the
			// reference's and netloom's alike) accepts only the pod's own traffic and replies to it.
			from, who := &r.outside.NetNS, "the other node"
			if r.types["firewall"] && len(pods) > 1 {
				from, who = &pods[(i+1)%len(pods)].ns, "the other pod"
			}
			got, err := harness.Dial(from, "tcp", r.node.Addr.Addr(), uint16(p.hostPort), 0)
			if err != nil || got != p.containerID {
				t.Errorf("hostPort %d from %s: got %q, %v; want %s's answer", p.hostPort, who, got, err, p.containerID)
			}
		}
	}
	if r.types["tuning"] {
		r.proveSysctls(t, pods)
	}
	if r.types["bandwidth"] {
		r.proveShaping(t, pods[0])
	}
}

// routeToPods gives the other node a route to each pod subnet through the pods' node, as a cluster's
// routing (kindnet, flannel host-gw) does; pods whose traffic is masqueraded do not need it.
func (r *runtimeRun) routeToPods(t *testing.T, pods []*runtimePod) {
	seen := map[netip.Prefix]bool{}
	for _, p := range pods {
		for _, ip := range p.result.IPs {
			pfx, _ := netip.AddrFromSlice(ip.Address.IP)
			ones, _ := ip.Address.Mask.Size()
			subnet := netip.PrefixFrom(pfx.Unmap(), ones).Masked()
			if seen[subnet] {
				continue
			}
			seen[subnet] = true
			via := r.node.Addr.Addr()
			if subnet.Addr().Is6() {
				via = r.node.Addr6.Addr()
			}
			r.outside.Run(t, "ip", "route", "replace", subnet.String(), "via", via.String())
		}
	}
}

// proveSysctls reads every sysctl the config's tuning sets inside each pod (IFNAME stands for the
// pod's interface, as in tuning's README).
func (r *runtimeRun) proveSysctls(t *testing.T, pods []*runtimePod) {
	var top map[string]any
	_ = json.Unmarshal(r.conf, &top)
	list, _ := top["plugins"].([]any)
	for _, p := range list {
		plugin, _ := p.(map[string]any)
		if plugin["type"] != "tuning" {
			continue
		}
		sysctls, _ := plugin["sysctl"].(map[string]any)
		for key, want := range sysctls {
			key = strings.ReplaceAll(key, "IFNAME", "eth0")
			for _, pod := range pods {
				got, err := pod.ns.Exec("sysctl", "-n", key)
				if err != nil || strings.TrimSpace(got) != want {
					t.Errorf("%s: sysctl %s = %q (%v), want %v", pod.containerID, key, strings.TrimSpace(got), err, want)
				}
			}
		}
	}
}

// proveShaping checks the shaping qdisc bandwidth made and that an iperf3 flow in each direction is
// held near the rate asked (the band is wide: the machines are shared).
func (r *runtimeRun) proveShaping(t *testing.T, p *runtimePod) {
	qdiscs := r.node.Run(t, "tc", "qdisc", "show")
	if !strings.Contains(qdiscs, "tbf") {
		t.Errorf("no tbf qdisc on the node after ADD with the bandwidth capability:\n%s", qdiscs)
	}
	podAddr := p.addrs()[0].String()
	check := func(dir string, got float64, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("iperf3 %s: %v", dir, err)
			return
		}
		t.Logf("iperf3 %s: %.1f Mbit/s (asked %d)", dir, got/1e6, shapedRate/1_000_000)
		if got > 1.3*shapedRate || got < 0.3*shapedRate {
			t.Errorf("iperf3 %s: %.1f Mbit/s, want about %d Mbit/s", dir, got/1e6, shapedRate/1_000_000)
		}
	}
	got, err := harness.Iperf3(t, p.ns, r.outside.NetNS, podAddr, 3)
	check("into the pod", got, err)
	got, err = harness.Iperf3(t, r.outside.NetNS, p.ns, r.outside.Addr.Addr().String(), 3)
	check("out of the pod", got, err)
}

// requireNothingLeft fails for anything of the pods still on the node after DEL.
func (r *runtimeRun) requireNothingLeft(t *testing.T, pods []*runtimePod) {
	for _, dir := range r.stores {
		if l := harness.Leases(t, dir, r.network); len(l) != 0 {
			t.Errorf("leases left in %s after DEL: %v", dir, l)
		}
	}
	for _, p := range pods {
		if out, err := p.ns.Exec("ip", "-o", "link", "show", "eth0"); err == nil {
			t.Errorf("%s: eth0 still exists after DEL: %s", p.containerID, out)
		}
	}
	for _, kind := range []string{"veth", "ifb", "macvlan", "ipvlan", "vlan"} {
		// eth0 is the node's own underlay; iproute2 prints the error line for a veth whose peer's
		// namespace (a pod's, just deleted) has no id in the node any more: not a link.
		out := dropLines(r.node.Run(t, "ip", "-o", "link", "show", "type", kind), "eth0", "Error: Peer netns reference is invalid.")
		if r.peer != nil && r.peer.onNode {
			out = dropLines(out, "hdpeer", "eth1")
		}
		if strings.TrimSpace(out) != "" {
			t.Errorf("%s links left on the node after DEL:\n%s", kind, out)
		}
	}
	if r.types["host-device"] {
		r.node.Run(t, "ip", "link", "show", "eth1") // back on the node under its own name
	}
	if r.dhcpLAN != nil { // DEL's release reached the server
		harness.WaitUntil(t, 10*time.Second, "dnsmasq releases the pods' leases", func() (bool, string) {
			l := r.dhcpLAN.Leases(t)
			return len(l) == 0, fmt.Sprint(l)
		})
	}
	rules := r.nodeRules(t)
	for _, p := range pods {
		needles := []string{p.containerID}
		for _, a := range p.addrs() {
			needles = append(needles, a.String())
		}
		for _, needle := range needles {
			for _, line := range strings.Split(rules, "\n") {
				if strings.Contains(line, needle) {
					t.Errorf("%s: rule left on the node after DEL: %s", p.containerID, line)
				}
			}
		}
	}
}

// nodeRules is the node's whole firewall: both iptables variants of both families and nftables.
func (r *runtimeRun) nodeRules(t *testing.T) string {
	var b strings.Builder
	for _, cmd := range []string{"iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save"} {
		if _, err := exec.LookPath(cmd); err != nil {
			continue
		}
		b.WriteString(r.node.Run(t, cmd))
	}
	b.WriteString(r.node.Run(t, "nft", "list", "ruleset"))
	return b.String()
}

func dropLines(out string, names ...string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		drop := false
		for _, n := range names {
			if strings.Contains(line, ": "+n+"@") || strings.Contains(line, ": "+n+":") || strings.TrimSpace(line) == n {
				drop = true
			}
		}
		if !drop {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
