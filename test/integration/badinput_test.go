package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

// Every bad input gets a CNI error JSON on stdout with the right code and a message naming the field,
// a non-zero exit, and leaves no bridge, veth or lease behind.
func TestBridgeBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	type tc struct {
		name   string
		conf   func(b *bridgeNet) []byte // nil: the network's valid config
		env    map[string]string         // overrides; "" deletes
		code   int
		naming string // the message (or details) must contain this
	}
	valid := func(b *bridgeNet) []byte { return b.netconf("1.1.0") }
	withPlugin := func(edit func(p map[string]any)) func(b *bridgeNet) []byte {
		return func(b *bridgeNet) []byte {
			p := b.plugin()
			p["cniVersion"], p["name"] = "1.1.0", b.Name
			edit(p)
			out, _ := json.Marshal(p)
			return out
		}
	}
	withRange := func(r map[string]any) func(b *bridgeNet) []byte {
		return withPlugin(func(p map[string]any) {
			p["ipam"].(map[string]any)["ranges"] = []any{[]any{r}}
		})
	}
	cases := []tc{
		{name: "invalid JSON", conf: func(*bridgeNet) []byte { return []byte(`{"cniVersion":"1.1.0","name":`) }, code: 6, naming: "JSON"},
		{name: "unknown cniVersion", conf: withPlugin(func(p map[string]any) { p["cniVersion"] = "9.9.9" }), code: 1, naming: "9.9.9"},
		{name: "subnet does not parse", conf: withRange(map[string]any{"subnet": "10.300.0.0/24"}), code: 7, naming: "subnet"},
		{name: "gateway outside subnet", conf: withRange(map[string]any{"subnet": "10.213.250.0/24", "gateway": "10.1.1.1"}), code: 7, naming: "gateway"},
		{name: "rangeStart outside subnet", conf: withRange(map[string]any{"subnet": "10.213.250.0/24", "rangeStart": "10.213.251.5"}), code: 7, naming: "rangeStart"},
		{name: "overlapping ranges", conf: withPlugin(func(p map[string]any) {
			p["ipam"].(map[string]any)["ranges"] = []any{
				[]any{map[string]any{"subnet": "10.213.250.0/24"}},
				[]any{map[string]any{"subnet": "10.213.250.128/25"}},
			}
		}), code: 7, naming: "overlap"},
		{name: "bridge name too long", conf: withPlugin(func(p map[string]any) { p["bridge"] = "nl0123456789abcdef" }), code: 7, naming: "bridge"},
		{name: "bridge name with slash", conf: withPlugin(func(p map[string]any) { p["bridge"] = "nl/x" }), code: 7, naming: "bridge"},
		{name: "bridge name with space", conf: withPlugin(func(p map[string]any) { p["bridge"] = "nl x" }), code: 7, naming: "bridge"},
		{name: "network name escapes dataDir", conf: withPlugin(func(p map[string]any) { p["name"] = "../etc" }), code: 7, naming: "network name"},
		{name: "container ID with slash", env: map[string]string{"CNI_CONTAINERID": "../../etc/x"}, code: 4, naming: "containerID"},
		{name: "missing CNI_NETNS", env: map[string]string{"CNI_NETNS": ""}, code: 4, naming: "CNI_NETNS"},
		{name: "missing CNI_IFNAME", env: map[string]string{"CNI_IFNAME": ""}, code: 4, naming: "CNI_IFNAME"},
		{name: "missing CNI_CONTAINERID", env: map[string]string{"CNI_CONTAINERID": ""}, code: 4, naming: "CNI_CONTAINERID"},
		{name: "netns does not exist", env: map[string]string{"CNI_NETNS": "/var/run/netns/netloom-no-such-ns"}, code: 4, naming: "netloom-no-such-ns"},
		{name: "ifname with slash", env: map[string]string{"CNI_IFNAME": "et/h0"}, code: 4, naming: "interface name"},
		{name: "ifname with space", env: map[string]string{"CNI_IFNAME": "eth 0"}, code: 4, naming: "interface name"},
		{name: "container ID with space", env: map[string]string{"CNI_CONTAINERID": "ctr bad"}, code: 4, naming: "containerID"},
		{name: "ifname too long", env: map[string]string{"CNI_IFNAME": "eth0123456789abcdef"}, code: 4, naming: "interface name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := newBridgeNet(t, false)
			n := harness.NewNetNS(t, "bad")
			env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-bad", "CNI_NETNS": n.Path, "CNI_IFNAME": "eth0"}
			for k, v := range c.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			conf := valid
			if c.conf != nil {
				conf = c.conf
			}
			out, err := harness.RunPlugin(t, "bridge", env, conf(b))
			if err == nil {
				t.Fatalf("exit status 0 for bad input; stdout: %s", out)
			}
			var e struct {
				Code    int    `json:"code"`
				Msg     string `json:"msg"`
				Details string `json:"details"`
			}
			if jerr := json.Unmarshal(out, &e); jerr != nil {
				t.Fatalf("stdout is not a CNI error JSON (%v): %q", jerr, out)
			}
			if e.Code != c.code {
				t.Errorf("code %d, want %d (msg %q)", e.Code, c.code, e.Msg)
			}
			if text := e.Msg + " " + e.Details; !strings.Contains(strings.ToLower(text), strings.ToLower(c.naming)) {
				t.Errorf("message %q does not name %q", text, c.naming)
			}
			if strings.Contains(string(out), "goroutine") || strings.Contains(string(out), "panic") {
				t.Errorf("stack trace on stdout: %s", out)
			}
			if _, err := netlink.LinkByName(b.Bridge); err == nil {
				t.Errorf("bridge %s created by a failed ADD", b.Bridge)
			}
			if l := b.leases(t); len(l) != 0 {
				t.Errorf("leases left: %v", l)
			}
			if o := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(o, "eth0") {
				t.Errorf("interface left in the pod: %s", o)
			}
		})
	}

	// A full range: a /30 has two usable addresses and the gateway takes one, so the second pod fails
	// with a message naming the range.
	t.Run("exhausted range", func(t *testing.T) {
		b := newBridgeNet(t, false)
		b.Subnets = []string{"10.213.251.0/30"}
		b.Extra["isDefaultGateway"] = false
		rt := harness.NewRuntime(t)
		list := b.conflist("1.1.0")
		for i, id := range []string{"ctr-x1"} {
			n := harness.NewNetNS(t, "x")
			if _, err := rt.Add(t, list, id, n.Path, "eth0", nil); err != nil {
				t.Fatalf("ADD %d: %v", i, err)
			}
			t.Cleanup(func() { _ = rt.Del(t, list, id, n.Path, "eth0", nil) })
		}
		n := harness.NewNetNS(t, "x")
		env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-x2", "CNI_NETNS": n.Path, "CNI_IFNAME": "eth0"}
		out, err := harness.RunPlugin(t, "bridge", env, b.netconf("1.1.0"))
		if err == nil {
			t.Fatalf("ADD into a full range succeeded: %s", out)
		}
		if !strings.Contains(string(out), "10.213.251.0/30") {
			t.Errorf("error does not name the range: %s", out)
		}
		if p := b.ports(t); len(p) != 1 {
			t.Errorf("bridge ports = %v, want the live pod's only", p)
		}
		if o := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(o, "eth0") {
			t.Errorf("interface left in the pod: %s", o)
		}
	})
}
