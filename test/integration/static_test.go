package integration

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/test/harness"
)

// static keeps no state and never opens the namespace; CNI_NETNS is required by the protocol only.
const staticNetns = "/var/run/netns/netloom-static-unused"

// staticIPAM is an ipam section with one IPv4 address (gateway .1) and one IPv6 address of the
// test-only ranges 10.231.0.0/24 and fd31::/64, a default route and DNS.
func staticIPAM() map[string]any {
	return map[string]any{
		"type": "static",
		"addresses": []any{
			map[string]any{"address": "10.231.0.5/24", "gateway": "10.231.0.1"},
			map[string]any{"address": "fd31::5/64"},
		},
		"routes": []any{map[string]any{"dst": "0.0.0.0/0"}, map[string]any{"dst": "192.168.231.0/24", "gw": "10.231.0.254"}},
		"dns":    map[string]any{"nameservers": []string{"10.231.0.53"}, "domain": "example.org", "search": []string{"example.org"}, "options": []string{"ndots:2"}},
	}
}

// staticConf is static run on its own, as a runtime runs a one-plugin network whose type is static.
func staticConf(cniVersion string, ipam map[string]any, extra map[string]any) []byte {
	p := map[string]any{"cniVersion": cniVersion, "name": harness.Unique("static"), "type": "static", "ipam": ipam}
	for k, v := range extra {
		p[k] = v
	}
	out, _ := json.Marshal(p)
	return out
}

// Both suites' static answer every configuration and CNI_ARGS the same way, in every CNI version:
// the same result for what they accept (each source and its precedence), a failure for what they
// refuse, netloom's with a code.
func TestStaticMatchesReference(t *testing.T) {
	t.Parallel()
	ref := filepath.Join(harness.ReferencePlugin(t, "static"), "static")
	mapped := staticIPAM()
	mapped["addresses"] = []any{map[string]any{"address": "10.231.0.5/24"}}
	for _, tc := range []struct {
		name    string
		ipam    map[string]any
		extra   map[string]any
		cniArgs string
		code    uint // 0: valid
	}{
		{name: "addresses, routes, dns", ipam: staticIPAM()},
		{name: "no addresses", ipam: map[string]any{"type": "static"}},
		{name: "CNI_ARGS IP and GATEWAY", ipam: staticIPAM(), cniArgs: "IgnoreUnknown=1;IP=10.231.1.6/24,fd31:1::6/64;GATEWAY=10.231.1.1,fd31:1::1,10.231.0.99"},
		{name: "args.cni.ips replace", ipam: staticIPAM(), extra: map[string]any{"args": map[string]any{"cni": map[string]any{"ips": []string{"10.231.2.7/24"}}}},
			cniArgs: "IgnoreUnknown=1;IP=10.231.1.6/24"},
		{name: "runtimeConfig.ips replace", ipam: staticIPAM(), extra: map[string]any{
			"runtimeConfig": map[string]any{"ips": []string{"10.231.3.8/24", "fd31:3::8/64"}},
			"args":          map[string]any{"cni": map[string]any{"ips": []string{"10.231.2.7/24"}}}},
			cniArgs: "IgnoreUnknown=1;IP=10.231.1.6/24"},
		{name: "one address", ipam: mapped},
		{name: "no ipam", code: conf.CodeInvalidConfig},
		{name: "address without length", ipam: map[string]any{"addresses": []any{map[string]any{"address": "10.231.0.5"}}}, code: conf.CodeInvalidConfig},
		{name: "bad CNI_ARGS IP", ipam: staticIPAM(), cniArgs: "IgnoreUnknown=1;IP=10.231.1.6", code: conf.CodeInvalidConfig},
		{name: "bad CNI_ARGS GATEWAY", ipam: staticIPAM(), cniArgs: "IgnoreUnknown=1;IP=10.231.1.6/24;GATEWAY=nope", code: conf.CodeInvalidConfig},
		{name: "bad runtimeConfig.ips", ipam: staticIPAM(), extra: map[string]any{"runtimeConfig": map[string]any{"ips": []string{"10.231.3.8"}}}, code: conf.CodeInvalidConfig},
		{name: "bad route", ipam: map[string]any{"routes": []any{map[string]any{"dst": "0.0.0.0"}}}, code: conf.CodeInvalidConfig},
	} {
		for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
			t.Run(tc.name+"/"+v, func(t *testing.T) {
				var stdin []byte
				if tc.ipam == nil {
					stdin, _ = json.Marshal(map[string]any{"cniVersion": v, "name": "s", "type": "static"})
				} else {
					stdin = staticConf(v, tc.ipam, tc.extra)
				}
				env := harness.CNIEnv("ADD", harness.Unique("ctr"), staticNetns, "eth0", tc.cniArgs)
				got, gotErr := harness.RunPlugin(t, "static", env, stdin)
				want, wantErr := harness.RunPlugin(t, ref, env, stdin)
				if tc.code != 0 {
					e, ok := harness.CNIError(got)
					if gotErr == nil || wantErr == nil || !ok || e.Code != tc.code {
						t.Fatalf("netloom: %v %s; reference: %v %s; want both to fail, netloom with code %d", gotErr, got, wantErr, want, tc.code)
					}
					return
				}
				if gotErr != nil || wantErr != nil {
					t.Fatalf("netloom: %v %s; reference: %v %s", gotErr, got, wantErr, want)
				}
				var g, w any
				if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil || !reflect.DeepEqual(g, w) {
					t.Errorf("results differ:\nnetloom   %s\nreference %s", got, want)
				}
			})
		}
	}
}

// A network the reference static set up is CHECKed and DELeted by netloom's after the node switched
// suites; netloom's CHECK fails once the configuration no longer matches the result.
func TestStaticReferenceAddNetloomCheckDel(t *testing.T) {
	t.Parallel()
	rt := harness.NewRuntimeWithPath(t, harness.ReferencePlugin(t, "static"))
	for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			stdin := staticConf(v, staticIPAM(), nil)
			id := harness.Unique("ctr")
			if _, err := rt.Add(t, stdin, id, staticNetns, "eth0", nil); err != nil {
				t.Fatalf("reference ADD: %v", err)
			}
			nl := rt.WithPath(t, harness.PluginDir(t))
			if err := nl.Check(t, stdin, id, staticNetns, "eth0", nil); err != nil {
				t.Errorf("netloom CHECK of the reference's ADD: %v", err)
			}
			// The same network, one address moved: the cached result no longer holds it.
			var changed map[string]any
			_ = json.Unmarshal(stdin, &changed)
			changed["ipam"].(map[string]any)["addresses"] = []any{map[string]any{"address": "10.231.0.6/24"}}
			moved, _ := json.Marshal(changed)
			if err := nl.Check(t, moved, id, staticNetns, "eth0", nil); err == nil || !strings.Contains(err.Error(), "10.231.0.6/24") {
				t.Errorf("CHECK with an address the result lacks: %v", err)
			}
			if v == "1.1.0" {
				if err := nl.Status(t, stdin); err != nil {
					t.Errorf("STATUS: %v", err)
				}
				if err := nl.GC(t, stdin, nil); err != nil {
					t.Errorf("GC: %v", err)
				}
			}
			for i := range 2 {
				if err := nl.Del(t, stdin, id, staticNetns, "eth0", nil); err != nil {
					t.Errorf("netloom DEL %d: %v", i+1, err)
				}
			}
		})
	}
}

// DEL succeeds whatever the configuration: there is nothing to release.
func TestStaticBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cmd, stdin, field string
		code                    uint
	}{
		{"broken JSON", "ADD", `{"cniVersion":"1.1.0","name":"s"`, "", conf.CodeDecodingFailure},
		{"no ipam", "ADD", `{"cniVersion":"1.1.0","name":"s","type":"static"}`, "ipam", conf.CodeInvalidConfig},
		{"bad address", "ADD", `{"cniVersion":"1.1.0","name":"s","ipam":{"addresses":[{"address":"10.231.0.5"}]}}`, "ipam.addresses[0]", conf.CodeInvalidConfig},
		{"gateway of the other family", "ADD", `{"cniVersion":"1.1.0","name":"s","ipam":{"addresses":[{"address":"10.231.0.5/24","gateway":"fd31::1"}]}}`, "ipam.addresses[0].gateway", conf.CodeInvalidConfig},
		{"two IPv4 in 0.2.0", "ADD", `{"cniVersion":"0.2.0","name":"s","ipam":{"addresses":[{"address":"10.231.0.5/24"},{"address":"10.231.1.5/24"}]}}`, "cniVersion", conf.CodeInvalidConfig},
		{"CHECK without prevResult", "CHECK", `{"cniVersion":"1.1.0","name":"s","ipam":{"addresses":[{"address":"10.231.0.5/24"}]}}`, "prevResult", conf.CodeInvalidConfig},
		{"DEL of a broken config", "DEL", `{"cniVersion":"1.1.0","name":"s","ipam":{"addresses":"x"}}`, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := harness.RunPlugin(t, "static", harness.CNIEnv(tc.cmd, "ctr1", staticNetns, "eth0", ""), []byte(tc.stdin))
			e, isErr := harness.CNIError(out)
			if tc.code == 0 {
				if err != nil || isErr {
					t.Fatalf("%s: %v %s", tc.cmd, err, out)
				}
				return
			}
			if err == nil || !isErr || e.Code != tc.code || !strings.Contains(e.Msg, tc.field) {
				t.Errorf("%s: %v %s; want code %d naming %q", tc.cmd, err, out, tc.code, tc.field)
			}
		})
	}
}

// static as the IPAM of an interface plugin: the pod gets the runtime's address (the "ips" capability
// beats the configured one) and the configured routes, and reaches a peer on the segment.
func TestStaticMacvlanPodPing(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	peer := harness.NewNetNS(t, "stpeer")
	w := harness.ConnectToHost(t, peer, "10.231.9.1/24", "10.231.9.2/24")
	ipam := map[string]any{"type": "static",
		"addresses": []any{map[string]any{"address": "10.231.9.50/24", "gateway": "10.231.9.1"}},
		"routes":    []any{map[string]any{"dst": "192.168.231.0/24", "gw": "10.231.9.2"}}}
	list, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": harness.Unique("stnet"), "plugins": []any{map[string]any{
		"type": "macvlan", "master": w.Host, "capabilities": map[string]bool{"ips": true}, "ipam": ipam}}})
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "stpod")
	id := harness.Unique("ctr")
	capArgs := map[string]any{"ips": []string{"10.231.9.60/24"}}
	r, err := rt.Add(t, list, id, pod.Path, "eth0", capArgs)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, id, pod.Path, "eth0", capArgs) })
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.231.9.60/24" || res.IPs[0].Gateway != nil {
		t.Errorf("IPs %v, want the runtime's 10.231.9.60/24 without a gateway", res.IPs)
	}
	if out := pod.Run(t, "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet 10.231.9.60/24") {
		t.Errorf("pod's eth0:\n%s", out)
	}
	if out := pod.Run(t, "ip", "-4", "route", "show", "192.168.231.0/24"); !strings.Contains(out, "via 10.231.9.2 dev eth0") {
		t.Errorf("pod's route to 192.168.231.0/24: %q", out)
	}
	if err := harness.Ping(t, pod, "10.231.9.2"); err != nil {
		t.Errorf("pod -> peer: %v", err)
	}
	if err := rt.Check(t, list, id, pod.Path, "eth0", capArgs); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	for i := range 2 {
		if err := rt.Del(t, list, id, pod.Path, "eth0", capArgs); err != nil {
			t.Errorf("DEL %d: %v", i+1, err)
		}
	}
	if err := pod.Do(func() error { _, err := netlink.LinkByName("eth0"); return err }); err == nil {
		t.Error("eth0 left in the pod after DEL")
	}
}
