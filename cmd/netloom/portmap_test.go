package main

import (
	"encoding/json"
	"testing"
)

func TestReferenceCall(t *testing.T) {
	list := `{"cniVersion":"1.0.0","name":"podnet","plugins":[{"type":"bridge","bridge":"cni0"},` +
		`{"type":"portmap","backend":"nftables","capabilities":{"portMappings":true}}]}`
	noPortmap := `{"cniVersion":"1.0.0","name":"podnet","plugins":[{"type":"bridge"}]}`
	result := json.RawMessage(`{"cniVersion":"1.0.0","ips":[{"address":"10.22.0.5/24"}]}`)
	pms := []any{map[string]any{"hostPort": 8080.0, "containerPort": 80.0, "protocol": "tcp"}}
	for _, tc := range []struct {
		name     string
		a        cachedAttachment
		ok       bool
		mappings int
	}{
		{"portmap with mappings", cachedAttachment{Config: []byte(list), CapabilityArgs: map[string]any{"portMappings": pms}, Result: result}, true, 1},
		{"portmap without mappings", cachedAttachment{Config: []byte(list), Result: result}, false, 0},
		{"no portmap", cachedAttachment{Config: []byte(noPortmap), CapabilityArgs: map[string]any{"portMappings": pms}}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			call, ok, err := referenceCall(tc.a)
			if err != nil || ok != tc.ok || call.mappings != tc.mappings {
				t.Fatalf("referenceCall = %+v, %v, %v; want ok %v with %d mappings", call, ok, err, tc.ok, tc.mappings)
			}
			if !ok {
				return
			}
			var conf struct {
				Name          string          `json:"name"`
				CNIVersion    string          `json:"cniVersion"`
				Backend       string          `json:"backend"`
				RuntimeConfig map[string]any  `json:"runtimeConfig"`
				PrevResult    json.RawMessage `json:"prevResult"`
			}
			if err := json.Unmarshal(call.stdin, &conf); err != nil {
				t.Fatal(err)
			}
			if conf.Name != "podnet" || conf.CNIVersion != "1.0.0" || conf.Backend != "nftables" ||
				conf.RuntimeConfig["portMappings"] == nil || len(conf.PrevResult) == 0 {
				t.Errorf("reference ADD config = %s", call.stdin)
			}
		})
	}
	if _, _, err := referenceCall(cachedAttachment{Config: []byte("{")}); err == nil {
		t.Error("a broken cached config is not an error")
	}
}
