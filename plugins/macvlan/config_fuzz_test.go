package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzExamples(f, "../../conflist-examples") {
		f.Add(ex, "")
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"macvlan"`
	for _, s := range []string{
		`{` + base + `,"master":"eth0","mode":"passthru","mtu":1400,"ipam":{"type":"host-local","subnet":"10.1.2.0/24"}}`,
		`{` + base + `,"mode":"source","bcqueuelen":4294967295,"linkInContainer":true}`,
		`{` + base + `,"mac":"0a:00:00:00:00:02","runtimeConfig":{"mac":"0a:00:00:00:00:03"}}`,
		`{` + base + `,"mode":"Bridge","master":"eth0.100:1"}`,
		`{` + base + `,"bcqueuelen":-1,"mtu":67}`,
	} {
		f.Add([]byte(s), "IgnoreUnknown=1;MAC=0a:58:00:00:00:01")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		n, err := parseConfig(stdin, cniArgs)
		if err != nil {
			requireCNIError(t, err)
			return
		}
		if n.Master != "" {
			if err := conf.ValidateIfName("master", n.Master); err != nil {
				t.Fatalf("accepted master %q: %v", n.Master, err)
			}
		}
		if name := modeName(n.mode); name == "unknown" || (n.Mode != "" && name != n.Mode) {
			t.Fatalf("mode %q parsed as %v (%s)", n.Mode, n.mode, name)
		}
		if m, ok := parseMode(modeName(n.mode)); !ok || m != n.mode {
			t.Fatalf("mode %v does not round-trip through its name", n.mode)
		}
		if n.MTU != 0 && n.MTU < minMTU {
			t.Fatalf("accepted mtu %d", n.MTU)
		}
		if n.BcQueueLen < 0 || n.BcQueueLen > maxBcQueueLen {
			t.Fatalf("accepted bcqueuelen %d", n.BcQueueLen)
		}
		if n.hasL3 != (n.IPAM.Type != "") {
			t.Fatalf("hasL3 %v with ipam type %q", n.hasL3, n.IPAM.Type)
		}
		if n.mac != nil && (len(n.mac) != 6 || n.mac[0]&1 != 0) {
			t.Fatalf("accepted MAC %s", n.mac)
		}
	})
}

// fuzzExamples returns every plugin configuration of conflist-examples/ as a runtime passes it to the
// plugin: a list's name and cniVersion injected into each plugin object, the portMappings capability
// filled in, and a prevResult for each plugin after the first.
func fuzzExamples(tb testing.TB, dir string) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.conf*"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no examples in %s: %v", dir, err)
	}
	var out [][]byte
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		var top map[string]any
		if err := json.Unmarshal(data, &top); err != nil {
			tb.Fatalf("%s: %v", file, err)
		}
		list, isList := top["plugins"].([]any)
		if !isList {
			out = append(out, data)
			continue
		}
		for i, p := range list {
			obj, ok := p.(map[string]any)
			if !ok {
				tb.Fatalf("%s: plugins[%d] is not an object", file, i)
			}
			obj["name"], obj["cniVersion"] = top["name"], top["cniVersion"]
			if caps, _ := obj["capabilities"].(map[string]any); caps["portMappings"] == true {
				obj["runtimeConfig"] = map[string]any{"portMappings": []any{
					map[string]any{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
					map[string]any{"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
				}}
			}
			if i > 0 {
				obj["prevResult"] = map[string]any{
					"cniVersion": top["cniVersion"],
					"interfaces": []any{
						map[string]any{"name": "cni0", "mac": "0a:58:0a:58:00:01"},
						map[string]any{"name": "veth1a2b3c4d", "mac": "0a:58:0a:58:00:02"},
						map[string]any{"name": "eth0", "mac": "0a:58:0a:58:00:05", "sandbox": "/var/run/netns/pod1"},
					},
					"ips":    []any{map[string]any{"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2}},
					"routes": []any{map[string]any{"dst": "0.0.0.0/0", "gw": "10.88.0.1"}},
				}
			}
			b, err := json.Marshal(obj)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// requireCNIError fails unless err is a CNI error with a code the specification (or netloom) defines and
// a message a person can act on.
func requireCNIError(t *testing.T, err error) *types.Error {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a CNI error", err, err)
	}
	switch te.Code {
	case 1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 999:
	default:
		t.Fatalf("error %q has code %d, not a known CNI code", te.Msg, te.Code)
	}
	if te.Msg == "" {
		t.Fatalf("CNI error with code %d has an empty message", te.Code)
	}
	return te
}
