package main

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"ptp","ipam":{"type":"host-local","subnet":"10.1.1.0/24"}`
	for _, tc := range []struct {
		name  string
		json  string
		code  uint   // 0: valid
		field string // must appear in the error message
		check func(*testing.T, *NetConf)
	}{
		{name: "defaults", json: `{` + base + `}`, check: func(t *testing.T, n *NetConf) {
			if n.IPMasq || n.MTU != 0 || n.masqBE != "" || n.IPMasqBackend != nil {
				t.Errorf("defaults: %+v", n)
			}
		}},
		{name: "every key", json: `{` + base + `,"ipMasq":true,"ipMasqBackend":"nftables","mtu":1400,"dns":{"nameservers":["10.1.1.1"]}}`, check: func(t *testing.T, n *NetConf) {
			if !n.IPMasq || n.masqBE != "nftables" || n.MTU != 1400 || len(n.DNS.Nameservers) != 1 {
				t.Errorf("parsed: %+v", n)
			}
		}},
		{name: "iptables backend", json: `{` + base + `,"ipMasqBackend":"iptables"}`, check: func(t *testing.T, n *NetConf) {
			if n.masqBE != "iptables" {
				t.Errorf("masqBE = %q", n.masqBE)
			}
		}},
		{name: "no ipam", json: `{"cniVersion":"1.0.0","name":"n","type":"ptp"}`, code: conf.CodeInvalidConfig, field: "ipam"},
		{name: "ipam without type", json: `{"cniVersion":"1.0.0","name":"n","type":"ptp","ipam":{}}`, code: conf.CodeInvalidConfig, field: "ipam"},
		{name: "mtu too small", json: `{` + base + `,"mtu":10}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "mtu too large", json: `{` + base + `,"mtu":70000}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "mtu wrong type", json: `{` + base + `,"mtu":"1500"}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "ipMasq wrong type", json: `{` + base + `,"ipMasq":"yes"}`, code: conf.CodeInvalidConfig, field: "ipMasq"},
		{name: "bad masq backend", json: `{` + base + `,"ipMasqBackend":"pf"}`, code: conf.CodeInvalidConfig, field: "ipMasqBackend"},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseConfig([]byte(tc.json))
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
			if err == nil && tc.check != nil {
				tc.check(t, n)
			}
		})
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
