package main

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"dummy"`
	for _, tc := range []struct {
		name  string
		json  string
		code  uint
		field string
	}{
		{name: "with ipam", json: `{` + base + `,"ipam":{"type":"static","addresses":[{"address":"10.0.0.5/32"}]}}`},
		{name: "dns", json: `{` + base + `,"ipam":{"type":"static"},"dns":{"nameservers":["10.0.0.53"]}}`},
		{name: "no ipam", json: `{` + base + `}`, code: conf.CodeInvalidConfig, field: "ipam"},
		{name: "ipam without type", json: `{` + base + `,"ipam":{}}`, code: conf.CodeInvalidConfig, field: "ipam"},
		{name: "ipam wrong type", json: `{` + base + `,"ipam":"static"}`, code: conf.CodeInvalidConfig, field: "ipam"},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.json))
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
