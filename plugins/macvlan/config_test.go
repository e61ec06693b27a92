package main

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"macvlan"`
	for _, tc := range []struct {
		name  string
		json  string
		args  string
		code  uint   // 0: valid
		field string // must appear in the error message
		check func(*testing.T, *NetConf)
	}{
		{name: "defaults", json: `{` + base + `}`, check: func(t *testing.T, n *NetConf) {
			if n.Master != "" || n.mode != netlink.MACVLAN_MODE_BRIDGE || n.hasL3 || n.mac != nil || n.MTU != 0 {
				t.Errorf("defaults: %+v", n)
			}
		}},
		{name: "every mode", json: `{` + base + `,"mode":"passthru"}`, check: func(t *testing.T, n *NetConf) {
			for _, m := range []string{"bridge", "private", "vepa", "passthru", "source"} {
				mode, ok := parseMode(m)
				if !ok || modeName(mode) != m {
					t.Errorf("mode %q: parsed %v %v, named %q", m, mode, ok, modeName(mode))
				}
			}
			if n.mode != netlink.MACVLAN_MODE_PASSTHRU {
				t.Errorf("mode = %v", n.mode)
			}
		}},
		{name: "ipam makes L3", json: `{` + base + `,"ipam":{"type":"host-local"}}`, check: func(t *testing.T, n *NetConf) {
			if !n.hasL3 {
				t.Error("hasL3 false with an ipam section")
			}
		}},
		{name: "unknown mode", json: `{` + base + `,"mode":"l2"}`, code: conf.CodeInvalidConfig, field: "mode"},
		{name: "master name too long", json: `{` + base + `,"master":"abcdefghijklmnop"}`, code: conf.CodeInvalidConfig, field: "master"},
		{name: "master name with slash", json: `{` + base + `,"master":"a/b"}`, code: conf.CodeInvalidConfig, field: "master"},
		{name: "mtu negative", json: `{` + base + `,"mtu":-1}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "mtu too small", json: `{` + base + `,"mtu":10}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "mtu wrong type", json: `{` + base + `,"mtu":"1500"}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "bcqueuelen negative", json: `{` + base + `,"bcqueuelen":-5}`, code: conf.CodeInvalidConfig, field: "bcqueuelen"},
		{name: "bcqueuelen too large", json: `{` + base + `,"bcqueuelen":4294967296}`, code: conf.CodeInvalidConfig, field: "bcqueuelen"},
		{name: "linkInContainer wrong type", json: `{` + base + `,"linkInContainer":"yes"}`, code: conf.CodeInvalidConfig, field: "linkInContainer"},
		{name: "bad mac", json: `{` + base + `,"mac":"zz"}`, code: conf.CodeInvalidConfig, field: "mac"},
		{name: "bad runtime mac", json: `{` + base + `,"runtimeConfig":{"mac":"zz"}}`, code: conf.CodeInvalidConfig, field: "runtimeConfig.mac"},
		{name: "bad CNI_ARGS mac", json: `{` + base + `}`, args: "MAC=zz", code: conf.CodeInvalidConfig, field: "CNI_ARGS MAC"},
		{name: "multicast mac", json: `{` + base + `,"mac":"01:00:5e:00:00:01"}`, code: conf.CodeInvalidConfig, field: "mac"},
		{name: "mac precedence", json: `{` + base + `,"mac":"0a:00:00:00:00:02","runtimeConfig":{"mac":"0a:00:00:00:00:03"}}`,
			args: "IgnoreUnknown=1;MAC=0a:00:00:00:00:01", check: func(t *testing.T, n *NetConf) {
				if n.mac.String() != "0a:00:00:00:00:03" {
					t.Errorf("mac = %s, want runtimeConfig's", n.mac)
				}
			}},
		{name: "CNI_ARGS beats mac", json: `{` + base + `,"mac":"0a:00:00:00:00:02"}`, args: "MAC=0a:00:00:00:00:01", check: func(t *testing.T, n *NetConf) {
			if n.mac.String() != "0a:00:00:00:00:01" {
				t.Errorf("mac = %s, want CNI_ARGS'", n.mac)
			}
		}},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseConfig([]byte(tc.json), tc.args)
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
