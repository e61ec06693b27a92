// Package fuzzseed is what netloom's fuzz targets share: seed inputs built from conflist-examples/ and
// the check every returned error must pass.
package fuzzseed

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// Examples returns every plugin configuration of conflist-examples/ as a runtime passes it to the
// plugin: a list's name and cniVersion injected into each plugin object, the portMappings capability
// filled in, and a prevResult for each plugin after the first.
func Examples(tb testing.TB, dir string) [][]byte {
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

// RequireCNIError fails unless err is a CNI error with a code the specification (or netloom) defines and
// a message a person can act on.
func RequireCNIError(t *testing.T, err error) *types.Error {
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
