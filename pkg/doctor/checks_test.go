package doctor

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/cnicache"
	"github.com/netloom/netloom/pkg/cniconf"
	"github.com/netloom/netloom/pkg/xtables"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// bridgeNet is a routed bridge network "pods" on br0 with the given subnets.
func bridgeNet(subnets ...string) netInfo {
	return netInfo{Name: "pods", File: "/etc/cni/net.d/10-pods.conflist", Types: []string{"bridge"},
		Prefixes: mustPrefixes(subnets...), Bridges: []string{"br0"}, Routed: true}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfDirAndInfo(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "10-pods.conflist", `{"cniVersion":"1.0.0","name":"pods","plugins":[
		{"type":"bridge","bridge":"br0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}]]}},
		{"type":"portmap","capabilities":{"portMappings":true}}]}`)
	writeFile(t, dir, "20-vx.conflist", `{"cniVersion":"1.1.0","name":"vx","plugins":[{"type":"vxlan-overlay","vni":7,"podCIDR":"10.2.1.0/24","ipam":{"type":"host-local"}}]}`)
	writeFile(t, dir, "30-one.conf", `{"cniVersion":"0.4.0","name":"one","type":"ptp","ipam":{"type":"static","addresses":[{"address":"10.3.0.2/24"}]}}`)
	writeFile(t, dir, "40-bad.conflist", `{"name":`)
	writeFile(t, dir, "50-ignored.txt", `{}`)
	nets, err := cniconf.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 4 {
		t.Fatalf("loaded %d files, want 4 (.conf, .conflist, not .txt)", len(nets))
	}
	if nets[3].Err == nil || nets[3].List != nil {
		t.Errorf("the broken file loaded: %+v", nets[3])
	}
	for _, tc := range []struct {
		i        int
		prefixes string
		bridges  string
		tunnels  string
		types    string
	}{
		{0, "10.1.0.0/24 fd00:1::/64", "br0", "", "bridge portmap"},
		{1, "10.2.1.0/24", "", "nlvx.7", "vxlan-overlay"},
		{2, "10.3.0.0/24", "", "", "ptp"},
	} {
		in := infoOf(nets[tc.i])
		var ps []string
		for _, p := range in.Prefixes {
			ps = append(ps, p.String())
		}
		got := [4]string{strings.Join(ps, " "), strings.Join(in.Bridges, " "), strings.Join(in.Tunnels, " "), strings.Join(in.Types, " ")}
		want := [4]string{tc.prefixes, tc.bridges, tc.tunnels, tc.types}
		if got != want || !in.Routed {
			t.Errorf("network %d: got %q routed=%v, want %q routed", tc.i, got, in.Routed, want)
		}
	}
	if refs := pluginRefs(nets[0]); len(refs) != 3 || !refs[1].IPAM {
		t.Errorf("plugin refs of pods: %+v", refs)
	}
}

func TestBinDirs(t *testing.T) {
	for _, tc := range []struct{ flag, env, want string }{
		{"", "", DefaultBinDir},
		{"", "/a:/b", "/a /b"},
		{"/c", "/a", "/c"},
	} {
		if got := strings.Join(BinDirs(tc.flag, tc.env), " "); got != tc.want {
			t.Errorf("BinDirs(%q, %q) = %q, want %q", tc.flag, tc.env, got, tc.want)
		}
	}
}

func TestBinaryFinding(t *testing.T) {
	in := netInfo{Name: "pods", File: "/etc/cni/net.d/pods.conflist", CNIVersion: "1.1.0"}
	for _, tc := range []struct {
		name   string
		bin    binary
		status Status
		fix    string
	}{
		{"present", binary{Path: "/opt/cni/bin/bridge", Versions: []string{"1.0.0", "1.1.0"}}, OK, ""},
		{"missing", binary{Problem: "no bridge in /opt/cni/bin"}, Fail, "install the bridge plugin binary as /opt/cni/bin/bridge"},
		{"not executable", binary{Path: "/opt/cni/bin/bridge", Problem: "not executable"}, Fail, "chmod 0755 /opt/cni/bin/bridge"},
		{"old", binary{Path: "/opt/cni/bin/bridge", Versions: []string{"0.4.0", "1.0.0"}}, Fail, "supports 1.1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := binaryFinding(in, pluginRef{Type: "bridge"}, tc.bin, []string{"/opt/cni/bin"})
			if f.Status != tc.status || !strings.Contains(f.Fix, tc.fix) {
				t.Errorf("got %v %q (fix %q), want %v with fix containing %q", f.Status, f.Found, f.Fix, tc.status, tc.fix)
			}
		})
	}
}

func TestStatusFindingAndConfig(t *testing.T) {
	in := netInfo{Name: "pods", File: "/x.conflist"}
	for _, tc := range []struct {
		err    error
		status Status
	}{
		{&types.Error{Code: 7, Msg: `ipam.ranges[0][0].subnet: "10.1.0.0/33" is not a CIDR`}, Fail},
		{&types.Error{Code: 50, Msg: "no free address"}, Fail},
		{&types.Error{Code: 51, Msg: "degraded"}, Warn},
		{&types.Error{Code: 11, Msg: "the xtables lock is held"}, Warn},
		{errors.New("signal: killed"), Fail},
	} {
		if f := statusFinding(Finding{}, in, "bridge", tc.err); f.Status != tc.status || f.Fix == "" {
			t.Errorf("%v: got %v (fix %q), want %v with a fix", tc.err, f.Status, f.Fix, tc.status)
		}
	}
	b, err := statusConfig([]byte(`{"type":"bridge","cniVersion":"0.3.1"}`), "pods")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	_ = json.Unmarshal(b, &m)
	if m["name"] != "pods" || m["cniVersion"] != "1.1.0" || m["type"] != "bridge" {
		t.Errorf("STATUS config %s", b)
	}
}

func TestForwardingFindings(t *testing.T) {
	dual := bridgeNet("10.1.0.0/24", "fd00:1::/64")
	macv := netInfo{Name: "mv", Types: []string{"macvlan"}, Prefixes: mustPrefixes("10.9.0.0/24")}
	sys := func(m map[string]string) sysctlGet {
		return func(k string) (string, error) {
			if v, ok := m[k]; ok {
				return v, nil
			}
			return "", os.ErrNotExist
		}
	}
	for _, tc := range []struct {
		name string
		nets []netInfo
		sys  map[string]string
		live map[string]bool
		want string // statuses in order
	}{
		{"both on", []netInfo{dual}, map[string]string{ipv4Forward: "1", ipv6Forward: "1"}, nil, "ok ok"},
		{"v4 off with pods", []netInfo{dual}, map[string]string{ipv4Forward: "0", ipv6Forward: "1"}, map[string]bool{"pods": true}, "FAIL ok"},
		{"v4 off without pods", []netInfo{dual}, map[string]string{ipv4Forward: "0", ipv6Forward: "1"}, nil, "warn ok"},
		{"IPv6 disabled", []netInfo{dual}, map[string]string{ipv4Forward: "1"}, nil, "ok FAIL"},
		{"macvlan needs none", []netInfo{macv}, map[string]string{ipv4Forward: "0"}, map[string]bool{"mv": true}, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := forwardingFindings(tc.nets, sys(tc.sys), tc.live)
			var got []string
			for _, f := range fs {
				got = append(got, f.Status.String())
				if f.Status == Fail && tc.sys[ipv4Forward] == "0" && !strings.Contains(f.Fix, "sysctl -w net.ipv4.ip_forward=1") {
					t.Errorf("fix %q", f.Fix)
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got %v, want %s: %+v", got, tc.want, fs)
			}
		})
	}
}

const saveDrop = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-FORWARD - [0:0]
:CNI-ADMIN - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.1.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.1.0.5/32 -j ACCEPT
COMMIT
`

const nftDrop = `{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": "t", "handle": 1}},
{"chain": {"family": "inet", "table": "t", "name": "fw", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
{"chain": {"family": "inet", "table": "t", "name": "other", "handle": 2}},
{"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
{"rule": {"family": "inet", "table": "t", "chain": "fw", "handle": 6, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "t", "chain": "fw", "handle": 4, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br0"}}, {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br0"}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "t", "chain": "fw", "handle": 7, "expr": [{"jump": {"target": "other"}}]}},
{"rule": {"family": "inet", "table": "t", "chain": "other", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.1.0.0", "len": 24}}}}, {"accept": null}]}}
]}`

func TestGates(t *testing.T) {
	ipt, err := iptablesGate("iptables-legacy FORWARD", saveDrop, "iptables-legacy", xtables.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := iptablesGate("iptables-nft FORWARD", strings.Replace(saveDrop, "-A FORWARD", "-A NOWHERE", 1), "iptables-nft", xtables.IPv4)
	nft, err := nftGates([]byte(nftDrop))
	if err != nil {
		t.Fatal(err)
	}
	if len(nft) != 1 || nft[0].Name != "nft inet t fw" || nft[0].DropBy != "policy" {
		t.Fatalf("nft gates %+v, want only inet t fw (ip filter FORWARD is iptables-nft's)", nft)
	}
	for _, tc := range []struct {
		name string
		g    gate
		p    string
		dev  string
		want bool
	}{
		{"firewall plugin's per-pod accept", ipt, "10.1.0.0/24", "br0", true},
		{"other subnet", ipt, "10.7.0.0/24", "br0", false},
		{"no jump from FORWARD", empty, "10.1.0.0/24", "br0", false},
		{"nft jump to a prefix accept", nft[0], "10.1.0.0/24", "", true},
		{"nft same-bridge accept", nft[0], "10.8.0.0/24", "br0", true},
		{"nft established only", nft[0], "10.8.0.0/24", "br1", false},
		{"nft v6", nft[0], "fd00:1::/64", "br1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rule, got := tc.g.accepts(netip.MustParsePrefix(tc.p), tc.dev); got != tc.want {
				t.Errorf("accepts(%s, %s) = %v (%s), want %v", tc.p, tc.dev, got, rule, tc.want)
			}
		})
	}
	if fix := ipt.fix(netip.MustParsePrefix("10.7.0.0/24")); !strings.HasPrefix(fix, "iptables-legacy -I FORWARD -s 10.7.0.0/24 -j ACCEPT") {
		t.Errorf("iptables fix %q", fix)
	}
	if fix := nft[0].fix(netip.MustParsePrefix("fd00:1::/64")); !strings.HasPrefix(fix, "nft insert rule inet t fw ip6 saddr fd00:1::/64 accept") {
		t.Errorf("nft fix %q", fix)
	}
}

func TestGateDropsByRule(t *testing.T) {
	const rhel = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i eth9 -j DROP
-A FORWARD -s 10.1.0.0/24 -j ACCEPT
-A FORWARD -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -s 10.2.0.0/24 -j ACCEPT
COMMIT
`
	g, err := iptablesGate("iptables FORWARD", rhel, "iptables", xtables.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if g.DropBy != "rule -A FORWARD -j REJECT --reject-with icmp-host-prohibited" {
		t.Errorf("DropBy = %q, want the final REJECT (the conditional DROP does not drop everything)", g.DropBy)
	}
	for p, want := range map[string]bool{"10.1.0.0/24": true, "10.2.0.0/24": false} {
		if _, got := g.accepts(netip.MustParsePrefix(p), "br0"); got != want {
			t.Errorf("accepts %s = %v, want %v (rules after the REJECT never see a packet)", p, got, want)
		}
	}
	nft, err := nftGates([]byte(`{"nftables": [
{"chain": {"family": "ip", "table": "fw", "name": "fwd", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
{"rule": {"family": "ip", "table": "fw", "chain": "fwd", "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(nft) != 1 || nft[0].DropBy != "chain fwd rule 1: drop" || !nft[0].Fam4 || nft[0].Fam6 {
		t.Errorf("nft gates %+v, want an IPv4 one dropping by its rule", nft)
	}
}

func TestForwardPolicyAndBrNetfilter(t *testing.T) {
	open := gate{Name: "iptables-nft FORWARD", Fam4: true}
	drop, _ := iptablesGate("iptables-legacy FORWARD", saveDrop, "iptables-legacy", xtables.IPv4)
	on := func(string) (string, error) { return "1", nil }
	off := func(string) (string, error) { return "0", nil }
	for _, tc := range []struct {
		name             string
		subnet           string
		gates            []gate
		get              sysctlGet
		policy, brfilter Status
	}{
		{"policy accept", "10.7.0.0/24", []gate{open}, on, OK, OK},
		{"drop, accepted by CNI-FORWARD", "10.1.0.0/24", []gate{open, drop}, on, OK, OK},
		{"drop, nothing accepts", "10.7.0.0/24", []gate{open, drop}, on, Fail, Fail},
		{"drop, bridged traffic bypasses", "10.7.0.0/24", []gate{drop}, off, Fail, OK},
		{"v4 gate does not judge v6", "fd00:7::/64", []gate{drop}, on, OK, OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nets := []netInfo{bridgeNet(tc.subnet)}
			p := forwardPolicyFindings(nets, tc.gates)
			b := brNetfilterFindings(nets, tc.gates, tc.get)
			if p[0].Status != tc.policy || b[0].Status != tc.brfilter {
				t.Errorf("forward-policy %v (%s), br-netfilter %v (%s); want %v, %v", p[0].Status, p[0].Found, b[0].Status, b[0].Found, tc.policy, tc.brfilter)
			}
			if p[0].Status == Fail && !strings.Contains(p[0].Fix, "-s "+tc.subnet) {
				t.Errorf("fix %q", p[0].Fix)
			}
		})
	}
}

func TestPodCIDRFindings(t *testing.T) {
	pods := bridgeNet("10.1.0.0/24")
	other := netInfo{Name: "other", File: "/o.conflist", Prefixes: mustPrefixes("10.1.0.128/25"), Bridges: []string{"br9"}}
	for _, tc := range []struct {
		name   string
		nets   []netInfo
		routes []hostRoute
		want   Status
		fix    string
	}{
		{"own bridge route", []netInfo{pods}, []hostRoute{{netip.MustParsePrefix("10.1.0.0/24"), "br0", "bridge"}}, OK, ""},
		{"default and supernet routes", []netInfo{pods}, []hostRoute{{netip.MustParsePrefix("0.0.0.0/0"), "eth0", "device"}, {netip.MustParsePrefix("10.0.0.0/8"), "eth0", "device"}}, OK, ""},
		{"pod routes on veths", []netInfo{pods}, []hostRoute{{netip.MustParsePrefix("10.1.0.5/32"), "veth1", "veth"}}, OK, ""},
		{"same prefix elsewhere", []netInfo{pods}, []hostRoute{{netip.MustParsePrefix("10.1.0.0/24"), "eth1", "device"}}, Fail, "ip route del 10.1.0.0/24 dev eth1"},
		{"narrower route elsewhere", []netInfo{pods}, []hostRoute{{netip.MustParsePrefix("10.1.0.64/26"), "eth1", "device"}}, Fail, "ip route del 10.1.0.64/26 dev eth1"},
		{"two networks overlap", []netInfo{pods, other}, nil, Fail, "pod subnet of its own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := podCIDRFindings(tc.nets, tc.routes)[0]
			if f.Status != tc.want || !strings.Contains(f.Fix, tc.fix) {
				t.Errorf("got %v %q fix %q, want %v fix containing %q", f.Status, f.Found, f.Fix, tc.want, tc.fix)
			}
		})
	}
}

func att(network, id string, ports int, hostIfs ...string) cnicache.Entry {
	var a cnicache.Entry
	a.Kind, a.NetworkName, a.ContainerID, a.IfName = "cniCacheV1", network, id, "eth0"
	for range ports {
		a.CapabilityArgs.PortMappings = append(a.CapabilityArgs.PortMappings, json.RawMessage(`{}`))
	}
	for _, h := range hostIfs {
		a.Result.Interfaces = append(a.Result.Interfaces, cnicache.Interface{Name: h})
	}
	a.Result.Interfaces = append(a.Result.Interfaces, cnicache.Interface{Name: "eth0", Sandbox: "/run/netns/x"})
	return a
}

func TestHairpinFindings(t *testing.T) {
	ports := map[string]bridgePort{"br0": {}, "vethon": {Bridge: "br0", Hairpin: true}, "vethoff": {Bridge: "br0"}}
	read := func(name string) (bridgePort, error) {
		if p, ok := ports[name]; ok {
			return p, nil
		}
		return bridgePort{}, errNoLink
	}
	for _, tc := range []struct {
		name string
		att  cnicache.Entry
		want string
	}{
		{"hairpin on", att("pods", "c1", 1, "br0", "vethon"), "ok"},
		{"hairpin off", att("pods", "c2", 2, "br0", "vethoff"), "FAIL"},
		{"no hostPorts", att("pods", "c3", 0, "br0", "vethoff"), "ok"},
		{"veth gone", att("pods", "c4", 1, "vethgone"), "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := hairpinFindings([]cnicache.Entry{tc.att}, []netInfo{bridgeNet("10.1.0.0/24")}, read)
			if len(fs) != 1 || fs[0].Status.String() != tc.want {
				t.Fatalf("got %+v, want one %s", fs, tc.want)
			}
			if tc.want == "FAIL" && !strings.HasPrefix(fs[0].Fix, "bridge link set dev vethoff hairpin on") {
				t.Errorf("fix %q", fs[0].Fix)
			}
		})
	}
}

func TestMTUFindings(t *testing.T) {
	vx := netInfo{Name: "vx", File: "/vx.conflist", Tunnels: []string{"nlvx.1"}, Routed: true}
	for _, tc := range []struct {
		name  string
		nets  []netInfo
		links []hostLink
		pods  []podIface
		want  string
		fix   string
	}{
		{"bridge and ports match", []netInfo{bridgeNet("10.1.0.0/24")},
			[]hostLink{{Name: "br0", MTU: 1500}, {Name: "veth1", Kind: "veth", MTU: 1500, Master: "br0"}}, nil, "ok", ""},
		{"port larger than bridge", []netInfo{bridgeNet("10.1.0.0/24")},
			[]hostLink{{Name: "br0", MTU: 1400}, {Name: "veth1", Kind: "veth", MTU: 1500, Master: "br0"}}, nil, "FAIL", "ip link set br0 mtu 1500"},
		{"tunnel fits underlay", []netInfo{vx},
			[]hostLink{{Name: "nlvx.1", Kind: "vxlan", MTU: 1450, Underlay: "eth0", UnderlayMTU: 1500}}, nil, "ok", ""},
		{"tunnel too large (v6 underlay)", []netInfo{vx},
			[]hostLink{{Name: "nlvx.1", Kind: "vxlan", MTU: 1450, Underlay: "eth0", UnderlayMTU: 1500, Local: netip.MustParseAddr("fd00::1")}}, nil, "FAIL", "ip link set nlvx.1 mtu 1430"},
		{"pod larger than tunnel", []netInfo{vx},
			[]hostLink{{Name: "nlvx.1", Kind: "vxlan", MTU: 1450, Underlay: "eth0", UnderlayMTU: 1500}},
			[]podIface{{Network: "vx", ContainerID: "c9", IfName: "eth0", NetNS: "/run/netns/p9", MTU: 1500}, {Network: "other", MTU: 9000}},
			"ok FAIL", "nsenter --net=/run/netns/p9 ip link set eth0 mtu 1450"},
		{"pod larger than bridge", []netInfo{bridgeNet("10.1.0.0/24")},
			[]hostLink{{Name: "br0", MTU: 1500}, {Name: "veth1", Kind: "veth", MTU: 1500, Master: "br0"}},
			[]podIface{{Network: "pods", ContainerID: "c1", IfName: "eth0", NetNS: "/run/netns/p1", MTU: 9000}, {Network: "pods", MTU: 1500}},
			"ok FAIL", "nsenter --net=/run/netns/p1 ip link set eth0 mtu 1500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := mtuFindings(tc.nets, tc.links, tc.pods)
			var got []string
			fix := ""
			for _, f := range fs {
				got = append(got, f.Status.String())
				fix += f.Fix
			}
			if strings.Join(got, " ") != tc.want || !strings.Contains(fix, tc.fix) {
				t.Errorf("got %v fix %q, want %s fix containing %q: %+v", got, fix, tc.want, tc.fix, fs)
			}
		})
	}
}

func TestRepairCallsOnlyBrokenChecks(t *testing.T) {
	var called []string
	mk := func(name string) Check {
		return Check{Name: name, Run: func(*Node) []Finding { return nil }, Fix: func(*Node) ([]string, error) {
			called = append(called, name)
			return []string{name + " fixed"}, nil
		}}
	}
	checks := []Check{mk("a"), mk("b"), mk("c")}
	r := Report{Findings: []Finding{{Check: "a", Status: OK}, {Check: "b", Status: Warn}, {Check: "c", Status: Unknown}}}
	done, err := Repair(&Node{}, checks, r)
	if err != nil || strings.Join(called, ",") != "b" || len(done) != 1 {
		t.Errorf("Repair called %v, did %v, err %v; want only b", called, done, err)
	}
}
