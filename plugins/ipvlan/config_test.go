package main

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"ipvlan"`
	const prev1 = `"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"nlup0"}],"ips":[{"address":"10.1.2.2/24","interface":0}]}`
	for _, tc := range []struct {
		name  string
		json  string
		code  uint   // 0: valid
		field string // must appear in the error message
		check func(*testing.T, *NetConf)
	}{
		{name: "defaults", json: `{` + base + `}`, check: func(t *testing.T, n *NetConf) {
			if n.Master != "" || n.mode != netlink.IPVLAN_MODE_L2 || n.MTU != 0 || n.prev != nil || n.LinkInContainer {
				t.Errorf("defaults: %+v", n)
			}
			if m, err := n.masterName(); m != "" || err != nil {
				t.Errorf("masterName = %q, %v; want the default route's", m, err)
			}
			if _, err := n.addresses(); conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "ipam") {
				t.Errorf("no ipam, no prevResult: %v; want code 7 naming ipam", err)
			}
		}},
		{name: "every mode", json: `{` + base + `,"mode":"l3s"}`, check: func(t *testing.T, n *NetConf) {
			for _, m := range []string{"l2", "l3", "l3s"} {
				mode, ok := parseMode(m)
				if !ok || modeName(mode) != m {
					t.Errorf("mode %q: parsed %v %v, named %q", m, mode, ok, modeName(mode))
				}
			}
			if n.mode != netlink.IPVLAN_MODE_L3S {
				t.Errorf("mode = %v", n.mode)
			}
		}},
		{name: "ipam gives addresses", json: `{` + base + `,"ipam":{"type":"host-local"},` + prev1 + `}`, check: func(t *testing.T, n *NetConf) {
			if fromPrev, err := n.addresses(); fromPrev || err != nil {
				t.Errorf("addresses() = %v, %v; want from IPAM", fromPrev, err)
			}
		}},
		{name: "chained: master and addresses from prevResult", json: `{` + base + `,` + prev1 + `}`, check: func(t *testing.T, n *NetConf) {
			if m, err := n.masterName(); m != "nlup0" || err != nil {
				t.Errorf("masterName = %q, %v; want prevResult's nlup0", m, err)
			}
			if fromPrev, err := n.addresses(); !fromPrev || err != nil {
				t.Errorf("addresses() = %v, %v; want from prevResult", fromPrev, err)
			}
			if _, err := conf.CheckPrevResult(&n.NetConf); err != nil {
				t.Errorf("prevResult gone after parsing, CHECK would not see it: %v", err)
			}
		}},
		{name: "master beats prevResult", json: `{` + base + `,"master":"eth9",` + prev1 + `}`, check: func(t *testing.T, n *NetConf) {
			if m, err := n.masterName(); m != "eth9" || err != nil {
				t.Errorf("masterName = %q, %v; want eth9", m, err)
			}
		}},
		{name: "chained: prevResult with two interfaces", json: `{` + base + `,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"a"},{"name":"b"}]}}`, check: func(t *testing.T, n *NetConf) {
			if _, err := n.masterName(); conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "prevResult") {
				t.Errorf("masterName: %v; want code 7 naming prevResult", err)
			}
			if _, err := n.addresses(); conf.Code(err) != conf.CodeInvalidConfig {
				t.Errorf("prevResult without IPs, no ipam: %v; want code 7", err)
			}
		}},
		{name: "unknown mode", json: `{` + base + `,"mode":"bridge"}`, code: conf.CodeInvalidConfig, field: "mode"},
		{name: "mode wrong type", json: `{` + base + `,"mode":2}`, code: conf.CodeInvalidConfig, field: "mode"},
		{name: "master name too long", json: `{` + base + `,"master":"abcdefghijklmnop"}`, code: conf.CodeInvalidConfig, field: "master"},
		{name: "master name with slash", json: `{` + base + `,"master":"a/b"}`, code: conf.CodeInvalidConfig, field: "master"},
		{name: "mtu negative", json: `{` + base + `,"mtu":-1}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "mtu too small", json: `{` + base + `,"mtu":10}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "mtu wrong type", json: `{` + base + `,"mtu":"1500"}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "linkInContainer wrong type", json: `{` + base + `,"linkInContainer":"yes"}`, code: conf.CodeInvalidConfig, field: "linkInContainer"},
		{name: "prevResult that does not parse", json: `{` + base + `,"prevResult":{"ips":"x"}}`, code: conf.CodeInvalidConfig, field: "prevResult"},
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
