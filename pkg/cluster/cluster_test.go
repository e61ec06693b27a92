package cluster

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
		check         func(t *testing.T, c *Config)
	}{
		{name: "minimal", in: `{"mode":"routed"}`, check: func(t *testing.T, c *Config) {
			if c.ConflistPath() != "/etc/cni/net.d/10-netloom.conflist" || c.Listen != ":9402" || c.Resync() != time.Minute || c.Bridge != "netloom0" || c.NetworkName != "netloom" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "the ConfigMap's keys", in: `{"mode":"routed","clusterCIDR":"10.244.0.0/16","cniConfDir":"/etc/cni/net.d","conflistName":"10-netloom.conflist","listen":":9402","resyncInterval":"60s"}`,
			check: func(t *testing.T, c *Config) {
				if !c.InCluster(netip.MustParsePrefix("10.244.3.0/24")) || c.InCluster(netip.MustParsePrefix("10.245.0.0/24")) || c.InCluster(netip.MustParsePrefix("10.0.0.0/8")) {
					t.Error("InCluster")
				}
				if !c.InCluster(netip.MustParsePrefix("fd00::/64")) {
					t.Error("no IPv6 cluster CIDR: every IPv6 pod CIDR is in")
				}
			}},
		{name: "dual-stack cluster CIDR", in: `{"mode":"routed","clusterCIDR":"10.244.0.0/16, fd44::/56"}`, check: func(t *testing.T, c *Config) {
			if c.InCluster(netip.MustParsePrefix("fd45::/64")) {
				t.Error("fd45::/64 is outside fd44::/56")
			}
		}},
		{name: "no mode", in: `{}`, err: "mode: missing"},
		{name: "unknown mode", in: `{"mode":"flannel"}`, err: `mode: "flannel"`},
		{name: "unknown key", in: `{"mode":"routed","podCIDR":"10.0.0.0/8"}`, err: `unknown field "podCIDR"`},
		{name: "bad CIDR", in: `{"mode":"routed","clusterCIDR":"10.244.0.1/16"}`, err: "clusterCIDR"},
		{name: "relative dir", in: `{"mode":"routed","cniConfDir":"net.d"}`, err: "cniConfDir"},
		{name: "not a conflist", in: `{"mode":"routed","conflistName":"10-netloom.conf"}`, err: "conflistName"},
		{name: "short resync", in: `{"mode":"routed","resyncInterval":"10ms"}`, err: "resyncInterval"},
		{name: "long bridge", in: `{"mode":"routed","bridge":"averyveryverylongname"}`, err: "bridge"},
		{name: "mtu", in: `{"mode":"routed","mtu":100}`, err: "mtu"},
		{name: "log level", in: `{"mode":"routed","logLevel":"loud"}`, err: "logLevel"},
		{name: "vxlan", in: `{"mode":"vxlan"}`, check: func(t *testing.T, c *Config) {
			if c.VNI != 1 || c.PeersFile() != "/run/netloom/peers-netloom.json" {
				t.Errorf("vxlan defaults: %+v", c)
			}
		}},
		{name: "masquerade by default with a cluster CIDR", in: `{"mode":"routed","clusterCIDR":"10.244.0.0/16"}`, check: masquerades(true)},
		{name: "no masquerade without a cluster CIDR", in: `{"mode":"routed"}`, check: masquerades(false)},
		{name: "masquerade off", in: `{"mode":"routed","clusterCIDR":"10.244.0.0/16","masquerade":false}`, check: masquerades(false)},
		{name: "masquerade off without a cluster CIDR", in: `{"mode":"routed","masquerade":false}`, check: masquerades(false)},
		{name: "masquerade on, IPv6 only", in: `{"mode":"routed","clusterCIDR":"fd44::/48","masquerade":true}`, check: masquerades(true)},
		{name: "masquerade on without a cluster CIDR", in: `{"mode":"routed","masquerade":true}`, err: "masquerade: true needs clusterCIDR"},
		{name: "vxlan masquerade on, IPv6 cluster CIDR only", in: `{"mode":"vxlan","clusterCIDR":"fd44::/48","masquerade":true}`, err: "needs an IPv4 clusterCIDR"},
		{name: "masquerade not a bool", in: `{"mode":"routed","masquerade":"yes"}`, err: "masquerade"},
		{name: "vni", in: `{"mode":"vxlan","vni":16777216}`, err: "vni"},
		{name: "state dir", in: `{"mode":"vxlan","stateDir":"run"}`, err: "stateDir"},
		{name: "ipip", in: `{"mode":"ipip"}`, check: func(t *testing.T, c *Config) {
			if c.IPIPMode != IPIPAlways {
				t.Errorf("ipip defaults: %+v", c)
			}
		}},
		{name: "ipip cross subnet as Calico spells it", in: `{"mode":"ipip","ipipMode":"CrossSubnet"}`, check: func(t *testing.T, c *Config) {
			if c.IPIPMode != IPIPCrossSubnet {
				t.Errorf("ipipMode %q", c.IPIPMode)
			}
		}},
		{name: "ipip mode bad", in: `{"mode":"ipip","ipipMode":"never"}`, err: `ipipMode: "never"`},
		{name: "ipip mode in vxlan", in: `{"mode":"vxlan","ipipMode":"always"}`, err: "applies to mode \"ipip\" only"},
		{name: "routed has no ipip mode", in: `{"mode":"routed"}`, check: func(t *testing.T, c *Config) {
			if c.IPIPMode != "" {
				t.Errorf("ipipMode %q in routed mode", c.IPIPMode)
			}
		}},
		{name: "bgp defaults", in: `{"mode":"bgp"}`, check: func(t *testing.T, c *Config) {
			b := c.BGP
			if b.ASN != 64512 || !b.mesh() || b.gracefulRestart() != 120 || b.HoldTime != 90 || c.BGPSocket() != "/run/netloom/netloomd.sock" {
				t.Errorf("bgp defaults: %+v", b)
			}
		}},
		{name: "bgp routers", in: `{"mode":"bgp","bgp":{"asn":65001,"gracefulRestart":0,"neighbors":[
			{"address":"10.0.0.1","asn":65000,"nodeSelector":"rack=a"},{"address":"10.0.1.1","asn":65000,"gracefulRestart":30}]}}`, check: func(t *testing.T, c *Config) {
			n := c.BGP.Neighbors
			if len(n) != 2 || n[0].HoldTime != 90 || n[0].GracefulRestart != 0 || n[1].GracefulRestart != 30 ||
				!n[0].selector.Matches(labels.Set{"rack": "a"}) || n[0].selector.Matches(labels.Set{"rack": "b"}) || !n[1].selector.Matches(labels.Set{}) {
				t.Errorf("bgp neighbours: %+v", n)
			}
		}},
		{name: "bgp in routed mode", in: `{"mode":"routed","bgp":{}}`, err: `bgp: set, but mode is "routed"`},
		{name: "bgp neighbour without AS", in: `{"mode":"bgp","bgp":{"neighbors":[{"address":"10.0.0.1"}]}}`, err: "bgp.neighbors[0].asn"},
		{name: "bgp neighbour bad address", in: `{"mode":"bgp","bgp":{"neighbors":[{"address":"router","asn":1}]}}`, err: "bgp.neighbors[0].address"},
		{name: "bgp bad selector", in: `{"mode":"bgp","bgp":{"neighbors":[{"address":"10.0.0.1","asn":1,"nodeSelector":"a==b==c"}]}}`, err: "bgp.neighbors[0].nodeSelector"},
		{name: "bgp unknown neighbour key", in: `{"mode":"bgp","bgp":{"neighbors":[{"address":"10.0.0.1","asn":1,"peerASN":2}]}}`, err: `unknown field "peerASN"`},
		{name: "bgp no peers at all", in: `{"mode":"bgp","bgp":{"nodeMesh":false}}`, err: "bgp.nodeMesh"},
		{name: "bgp hold time", in: `{"mode":"bgp","bgp":{"holdTime":2}}`, err: "bgp.holdTime"},
		{name: "bgp relative socket", in: `{"mode":"bgp","bgp":{"apiSocket":"x.sock"}}`, err: "bgp.apiSocket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func masquerades(want bool) func(t *testing.T, c *Config) {
	return func(t *testing.T, c *Config) {
		if got := c.Masquerades(); got != want {
			t.Errorf("Masquerades() = %v, want %v", got, want)
		}
	}
}

func node(name string, cidrs []string, ips ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: cidrs}}
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	return n
}

func TestNodeFrom(t *testing.T) {
	n, err := NodeFrom(node("a", []string{"10.244.1.0/24", "fd44::100/120"}, "10.0.0.1", "fd00::1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.PodCIDRs) != 2 || len(n.InternalIPs) != 2 {
		t.Fatalf("%+v", n)
	}
	if ip, ok := n.InternalIP(netip.MustParsePrefix("fd44::100/120")); !ok || ip.String() != "fd00::1" {
		t.Errorf("InternalIP for IPv6: %v %v", ip, ok)
	}
	old := node("b", nil, "10.0.0.2")
	old.Spec.PodCIDR = "10.244.2.0/24"
	old.Annotations = map[string]string{"netloom.io/mode": "routed", "other.io/x": "y"}
	if n, err := NodeFrom(old); err != nil || len(n.PodCIDRs) != 1 || len(n.Annotations) != 1 {
		t.Errorf("spec.podCIDR only: %+v %v", n, err)
	}
	for _, bad := range []*corev1.Node{node("c", []string{"10.244.1.1/24"}), node("d", nil, "not-an-ip")} {
		if _, err := NodeFrom(bad); err == nil || !strings.Contains(err.Error(), bad.Name) {
			t.Errorf("%s: err %v, want one naming the node", bad.Name, err)
		}
	}
}

func TestRenderConflist(t *testing.T) {
	c, _ := ParseConfig([]byte(`{"mode":"routed","mtu":1450}`))
	self, _ := NodeFrom(node("a", []string{"10.244.1.0/24", "fd44::100/120"}, "10.0.0.1"))
	self.RuntimeVersion = "containerd://2.1.4"
	out, err := RenderConflist(c, self)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatal(err)
	}
	if list.CNIVersion != "1.1.0" || list.Name != "netloom" || len(list.Plugins) != 2 || list.Plugins[0]["type"] != "bridge" || list.Plugins[1]["type"] != "portmap" {
		t.Fatalf("%s", out)
	}
	s := string(out)
	for _, want := range []string{`"subnet": "10.244.1.0/24"`, `"subnet": "fd44::100/120"`, `"dst": "::/0"`, `"mtu": 1450`, `"portMappings": true`} {
		if !strings.Contains(s, want) {
			t.Errorf("conflist lacks %s:\n%s", want, s)
		}
	}
	vx, _ := ParseConfig([]byte(`{"mode":"vxlan","clusterCIDR":"10.244.0.0/16","stateDir":"/run/nl","vni":7}`))
	out, err = RenderConflist(vx, self)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"type": "vxlan-overlay"`, `"vni": 7`, `"podCIDR": "10.244.1.0/24"`, `"nodeIP": "10.0.0.1"`,
		`"peersFile": "/run/nl/peers-netloom.json"`, `"clusterCIDR": "10.244.0.0/16"`, `"ipMasq": true`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("vxlan conflist lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), `"mode"`) {
		t.Errorf("vxlan conflist has ipip's mode:\n%s", out)
	}
	ipip, _ := ParseConfig([]byte(`{"mode":"ipip","ipipMode":"crossSubnet","clusterCIDR":"10.244.0.0/16"}`))
	out, err = RenderConflist(ipip, self)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"type": "ipip-overlay"`, `"mode": "crossSubnet"`, `"podCIDR": "10.244.1.0/24"`, `"nodeIP": "10.0.0.1"`,
		`"peersFile": "/run/netloom/peers-netloom.json"`, `"ipMasq": true`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ipip conflist lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), `"vni"`) {
		t.Errorf("ipip conflist has a vni:\n%s", out)
	}
	bgpc, _ := ParseConfig([]byte(`{"mode":"bgp","stateDir":"/run/nl"}`))
	out, err = RenderConflist(bgpc, self)
	if err != nil {
		t.Fatal(err)
	}
	var chain struct{ Plugins []map[string]any }
	if err := json.Unmarshal(out, &chain); err != nil || len(chain.Plugins) != 3 || chain.Plugins[0]["type"] != "bridge" ||
		chain.Plugins[1]["type"] != "bgp-route" || chain.Plugins[1]["announce"] != "node" || chain.Plugins[1]["speaker"] != "unix:///run/nl/netloomd.sock" || chain.Plugins[2]["type"] != "portmap" {
		t.Errorf("bgp conflist (%v):\n%s", err, out)
	}
	noMasq, _ := ParseConfig([]byte(`{"mode":"vxlan","clusterCIDR":"10.244.0.0/16","masquerade":false}`))
	if out, err = RenderConflist(noMasq, self); err != nil || !strings.Contains(string(out), `"ipMasq": false`) || !strings.Contains(string(out), `"clusterCIDR": "10.244.0.0/16"`) {
		t.Errorf("vxlan with masquerade false: %v\n%s", err, out)
	}
	v6only, _ := NodeFrom(node("b", []string{"fd44::/64"}, "fd00::1"))
	if _, err := RenderConflist(vx, v6only); err == nil || !strings.Contains(err.Error(), "IPv4") {
		t.Errorf("vxlan mode on an IPv6-only node: %v", err)
	}
	if _, err := RenderConflist(c, Node{Name: "x"}); err == nil {
		t.Error("a node without pod CIDRs has no conflist")
	}
}

func TestCNIVersionFor(t *testing.T) {
	auto, _ := ParseConfig([]byte(`{"mode":"routed"}`))
	fixed, _ := ParseConfig([]byte(`{"mode":"routed","cniVersion":"1.1.0"}`))
	for _, tc := range []struct {
		c       *Config
		runtime string
		want    string
	}{
		{auto, "containerd://2.1.4", "1.1.0"},
		{auto, "containerd://v2.0.0", "1.1.0"},
		{auto, "containerd://1.7.24", "1.0.0"},
		{auto, "containerd://1.6.20~ds1", "1.0.0"},
		{auto, "cri-o://1.33.0", "1.0.0"},
		{auto, "", "1.0.0"},
		{fixed, "containerd://1.6.20", "1.1.0"},
	} {
		if got := CNIVersionFor(tc.c, tc.runtime); got != tc.want {
			t.Errorf("CNIVersionFor(%q, cniVersion %q) = %s, want %s", tc.runtime, tc.c.CNIVersion, got, tc.want)
		}
	}
	if _, err := ParseConfig([]byte(`{"mode":"routed","cniVersion":"0.2.0"}`)); err == nil || !strings.Contains(err.Error(), "cniVersion") {
		t.Errorf("cniVersion 0.2.0: %v", err)
	}
}

func TestWriteIfChanged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net.d")
	path := filepath.Join(dir, "10-netloom.conflist")
	for i, tc := range []struct {
		data    string
		changed bool
	}{{"a", true}, {"a", false}, {"b", true}} {
		changed, err := WriteIfChanged(path, []byte(tc.data), 0o644)
		if err != nil || changed != tc.changed {
			t.Fatalf("write #%d: changed %v, %v; want %v", i, changed, err, tc.changed)
		}
		got, _ := os.ReadFile(path)
		if string(got) != tc.data {
			t.Errorf("write #%d: file holds %q", i, got)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only the conflist (no temporary file left)", entries)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
}

func TestRouterPlan(t *testing.T) {
	c, _ := ParseConfig([]byte(`{"mode":"routed","clusterCIDR":"10.244.0.0/16"}`))
	r := NewRouter(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.SetSelf(Node{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24")}})
	r.lookup = func(a netip.Addr) (int, bool, error) {
		// 10.0.0.0/24 is this node's network; 10.9.0.0/16 is behind a router.
		return 7, netip.MustParsePrefix("10.0.0.0/24").Contains(a), nil
	}
	for _, tc := range []struct {
		name   string
		node   *corev1.Node
		routes int
		why    string
	}{
		{"same L2", node("b", []string{"10.244.1.0/24"}, "10.0.0.2"), 1, ""},
		{"behind a router", node("c", []string{"10.244.2.0/24"}, "10.9.0.2"), 0, "behind a router"},
		{"outside cluster CIDR", node("d", []string{"10.250.0.0/24"}, "10.0.0.4"), 0, "outside clusterCIDR"},
		{"overlaps this node", node("e", []string{"10.244.0.128/25"}, "10.0.0.5"), 0, "overlaps"},
		{"no IPv6 InternalIP", node("f", []string{"10.244.6.0/24", "fd44::/120"}, "10.0.0.6"), 1, "no InternalIP"},
		{"no pod CIDR yet", node("g", nil, "10.0.0.7"), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NodeFrom(tc.node)
			if err != nil {
				t.Fatal(err)
			}
			rs, why := r.plan(n)
			if len(rs) != tc.routes {
				t.Errorf("routes %+v, want %d", rs, tc.routes)
			}
			if got := strings.Join(why, "; "); (tc.why == "") != (got == "") || !strings.Contains(got, tc.why) {
				t.Errorf("reasons %q, want %q", got, tc.why)
			}
			for _, pr := range rs {
				if pr.LinkIndex != 7 || pr.Via != n.InternalIPs[0] {
					t.Errorf("route %+v", pr)
				}
			}
		})
	}
}

// Every key of the configuration file has its row in netloomd's README.
func TestConfigKeysDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../cmd/netloomd/README.md")
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		key, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if key == "" {
			continue // unexported state
		}
		if !strings.Contains(string(readme), "| `"+key+"` |") {
			t.Errorf("cmd/netloomd/README.md has no row for the key %q", key)
		}
	}
}

// TestConflistTemplate: a user's template gets the node's values and the mode's chain as JSON, and its
// output must be a conflist; a bad template, an unknown field or output that is not one are errors
// naming the key.
func TestConflistTemplate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.tmpl", `{"cniVersion": "{{.CNIVersion}}", "name": "{{.NetworkName}}-{{.NodeName}}",
  "plugins": [{{.MainPlugin}}, {"type": "bandwidth", "capabilities": {"bandwidth": true}}, {"type": "portmap", "capabilities": {"portMappings": true}}],
  "x-pod-cidrs": {{json .PodCIDRs}}}`)
	self, _ := NodeFrom(node("n1", []string{"10.244.1.0/24"}, "10.0.0.1"))
	c, err := ParseConfig([]byte(`{"mode":"routed","conflistTemplate":"` + good + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := RenderConflist(c, self)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Name    string
		Plugins []map[string]any
		Pods    []string `json:"x-pod-cidrs"`
	}
	if err := json.Unmarshal(out, &list); err != nil || list.Name != "netloom-n1" || len(list.Plugins) != 3 ||
		list.Plugins[0]["type"] != "bridge" || list.Plugins[1]["type"] != "bandwidth" || len(list.Pods) != 1 || list.Pods[0] != "10.244.1.0/24" {
		t.Errorf("rendered (%v):\n%s", err, out)
	}
	whole := write("whole.tmpl", `{"cniVersion": "{{.CNIVersion}}", "name": "n", "plugins": {{.Plugins}}}`)
	c2, _ := ParseConfig([]byte(`{"mode":"routed","conflistTemplate":"` + whole + `"}`))
	if out, err := RenderConflist(c2, self); err != nil || !strings.Contains(string(out), `"type":"portmap"`) {
		t.Errorf("the mode's whole chain (%v):\n%s", err, out)
	}

	for _, tc := range []struct{ name, text, err string }{
		{"not a template", `{{.Nope`, "not a Go template"},
		{"unknown field", `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"{{.Bridge}}"}]}`, "conflistTemplate"},
		{"not JSON", `cniVersion: 1.0.0`, "did not make JSON"},
		{"no plugins", `{"cniVersion":"1.0.0","name":"n","plugins":[]}`, "without cniVersion, name or plugins"},
		{"plugin without type", `{"cniVersion":"1.0.0","name":"n","plugins":[{"bridge":"x"}]}`, "plugins[0] without a type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tc.name, " ", "-")+".tmpl", tc.text)
			c, err := ParseConfig([]byte(`{"mode":"routed","conflistTemplate":"` + p + `"}`))
			if err == nil {
				_, err = RenderConflist(c, self)
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "conflistTemplate") {
				t.Errorf("err %v, want it to name conflistTemplate and say %q", err, tc.err)
			}
		})
	}
	if _, err := ParseConfig([]byte(`{"mode":"routed","conflistTemplate":"conflist.tmpl"}`)); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative template path: %v", err)
	}
	if _, err := ParseConfig([]byte(`{"mode":"routed","conflistTemplate":"/nonexistent/conflist.tmpl"}`)); err == nil || !strings.Contains(err.Error(), "conflistTemplate") {
		t.Errorf("missing template file: %v", err)
	}
}
