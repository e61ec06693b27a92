package main

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"vlan"`
	for _, tc := range []struct {
		name  string
		json  string
		code  uint
		field string
	}{
		{name: "every key", json: `{` + base + `,"master":"eth0","vlanId":100,"mtu":1400,"linkInContainer":true,"ipam":{"type":"host-local"}}`},
		{name: "vlan 0 and 4094", json: `{` + base + `,"master":"eth0","vlanId":4094}`},
		{name: "no master", json: `{` + base + `,"vlanId":100}`, code: conf.CodeInvalidConfig, field: "master"},
		{name: "master name too long", json: `{` + base + `,"master":"abcdefghijklmnop"}`, code: conf.CodeInvalidConfig, field: "master"},
		{name: "vlanId negative", json: `{` + base + `,"master":"eth0","vlanId":-1}`, code: conf.CodeInvalidConfig, field: "vlanId"},
		{name: "vlanId 4095", json: `{` + base + `,"master":"eth0","vlanId":4095}`, code: conf.CodeInvalidConfig, field: "vlanId"},
		{name: "vlanId wrong type", json: `{` + base + `,"master":"eth0","vlanId":"100"}`, code: conf.CodeInvalidConfig, field: "vlanId"},
		{name: "mtu negative", json: `{` + base + `,"master":"eth0","mtu":-1}`, code: conf.CodeInvalidConfig, field: "mtu"},
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

func TestInspect(t *testing.T) {
	n, err := parseConfig([]byte(`{"cniVersion":"1.0.0","name":"n","master":"eth0","vlanId":100,"mtu":1400}`))
	if err != nil {
		t.Fatal(err)
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = "eth0", 1400
	for _, tc := range []struct {
		name string
		l    netlink.Link
		ok   bool
	}{
		{"match", &netlink.Vlan{LinkAttrs: la, VlanId: 100}, true},
		{"other VLAN", &netlink.Vlan{LinkAttrs: la, VlanId: 101}, false},
		{"not a vlan", &netlink.Dummy{LinkAttrs: la}, false},
	} {
		if err := n.Inspect(tc.l); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
