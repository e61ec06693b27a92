package main

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall/forward"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"firewall"`
	for _, tc := range []struct {
		name  string
		json  string
		code  uint   // 0: valid
		field string // must appear in the error message
		check func(*testing.T, *NetConf)
	}{
		{name: "defaults", json: `{` + base + `}`, check: func(t *testing.T, n *NetConf) {
			if n.Backend != "" || n.admin != "CNI-ADMIN" || n.zone != "trusted" || n.policy != forward.PolicyOpen {
				t.Errorf("defaults: %+v", n)
			}
		}},
		{name: "every key", json: `{` + base + `,"backend":"iptables","iptablesAdminChainName":"MY-ADMIN","firewalldZone":"public","ingressPolicy":"isolated"}`, check: func(t *testing.T, n *NetConf) {
			if n.Backend != "iptables" || n.admin != "MY-ADMIN" || n.zone != "public" || n.policy != forward.PolicyIsolated {
				t.Errorf("parsed: %+v", n)
			}
		}},
		{name: "firewalld", json: `{` + base + `,"backend":"firewalld"}`},
		{name: "same-bridge", json: `{` + base + `,"ingressPolicy":"same-bridge"}`, check: func(t *testing.T, n *NetConf) {
			if n.policy != forward.PolicySameBridge {
				t.Errorf("policy %q", n.policy)
			}
		}},
		{name: "open", json: `{` + base + `,"ingressPolicy":"open"}`},
		{name: "nftables", json: `{` + base + `,"backend":"nftables","ingressPolicy":"same-bridge"}`, check: func(t *testing.T, n *NetConf) {
			if n.Backend != "nftables" || n.policy != forward.PolicySameBridge {
				t.Errorf("parsed: %+v", n)
			}
		}},
		{name: "unknown backend", json: `{` + base + `,"backend":"pf"}`, code: conf.CodeInvalidConfig, field: "backend"},
		{name: "backend wrong type", json: `{` + base + `,"backend":1}`, code: conf.CodeInvalidConfig, field: "backend"},
		{name: "admin chain is FORWARD", json: `{` + base + `,"iptablesAdminChainName":"FORWARD"}`, code: conf.CodeInvalidConfig, field: "iptablesAdminChainName"},
		{name: "admin chain too long", json: `{` + base + `,"iptablesAdminChainName":"` + strings.Repeat("A", 29) + `"}`, code: conf.CodeInvalidConfig, field: "iptablesAdminChainName"},
		{name: "admin chain with blank", json: `{` + base + `,"iptablesAdminChainName":"MY ADMIN"}`, code: conf.CodeInvalidConfig, field: "iptablesAdminChainName"},
		{name: "zone with blank", json: `{` + base + `,"firewalldZone":"my zone"}`, code: conf.CodeInvalidConfig, field: "firewalldZone"},
		{name: "unknown policy", json: `{` + base + `,"ingressPolicy":"closed"}`, code: conf.CodeInvalidConfig, field: "ingressPolicy"},
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
