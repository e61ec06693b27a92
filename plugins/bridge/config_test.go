package main

import (
	"github.com/netloom/netloom/internal/doccheck"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"bridge"`
	for _, tc := range []struct {
		name  string
		json  string
		args  string
		code  uint   // 0: valid
		field string // must appear in the error message
		check func(*testing.T, *NetConf)
	}{
		{name: "defaults", json: `{` + base + `}`, check: func(t *testing.T, n *NetConf) {
			if n.Bridge != "cni0" || n.IsGateway || n.hasL3 {
				t.Errorf("defaults: %+v", n)
			}
		}},
		{name: "default gateway implies gateway", json: `{` + base + `,"isDefaultGateway":true}`, check: func(t *testing.T, n *NetConf) {
			if !n.IsGateway {
				t.Error("isDefaultGateway did not set isGateway")
			}
		}},
		{name: "bridge name too long", json: `{` + base + `,"bridge":"abcdefghijklmnop"}`, code: conf.CodeInvalidConfig, field: "bridge"},
		{name: "bridge name with slash", json: `{` + base + `,"bridge":"a/b"}`, code: conf.CodeInvalidConfig, field: "bridge"},
		{name: "bridge name with space", json: `{` + base + `,"bridge":"a b"}`, code: conf.CodeInvalidConfig, field: "bridge"},
		{name: "mtu too small", json: `{` + base + `,"mtu":10}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "mtu wrong type", json: `{` + base + `,"mtu":"1500"}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "vlan out of range", json: `{` + base + `,"vlan":4095}`, code: conf.CodeInvalidConfig, field: "vlan"},
		{name: "trunk min>max", json: `{` + base + `,"vlanTrunk":[{"minID":20,"maxID":10}]}`, code: conf.CodeInvalidConfig, field: "vlanTrunk[0]"},
		{name: "trunk min only", json: `{` + base + `,"vlanTrunk":[{"minID":20}]}`, code: conf.CodeInvalidConfig, field: "vlanTrunk[0]"},
		{name: "trunk bad id", json: `{` + base + `,"vlanTrunk":[{"id":5000}]}`, code: conf.CodeInvalidConfig, field: "vlanTrunk[0].id"},
		{name: "trunk expands", json: `{` + base + `,"vlanTrunk":[{"minID":10,"maxID":12},{"id":11},{"id":3}]}`, check: func(t *testing.T, n *NetConf) {
			if got := n.trunk; len(got) != 4 || got[0] != 3 || got[3] != 12 {
				t.Errorf("trunk = %v", got)
			}
		}},
		{name: "hairpin and promisc", json: `{` + base + `,"hairpinMode":true,"promiscMode":true}`, code: conf.CodeInvalidConfig, field: "hairpinMode"},
		{name: "no container iface with ipam", json: `{` + base + `,"disableContainerInterface":true,"ipam":{"type":"host-local"}}`, code: conf.CodeInvalidConfig, field: "disableContainerInterface"},
		{name: "bad masq backend", json: `{` + base + `,"ipMasqBackend":"pf"}`, code: conf.CodeInvalidConfig, field: "ipMasqBackend"},
		{name: "vlan gateway name too long", json: `{` + base + `,"bridge":"abcdefghijklm","vlan":100,"isGateway":true}`, code: conf.CodeInvalidConfig, field: "bridge"},
		{name: "bad runtime mac", json: `{` + base + `,"runtimeConfig":{"mac":"zz"}}`, code: conf.CodeInvalidConfig, field: "runtimeConfig.mac"},
		{name: "multicast mac", json: `{` + base + `,"runtimeConfig":{"mac":"01:00:5e:00:00:01"}}`, code: conf.CodeInvalidConfig, field: "runtimeConfig.mac"},
		{name: "mac precedence", json: `{` + base + `,"args":{"cni":{"mac":"0a:00:00:00:00:02"}},"runtimeConfig":{"mac":"0a:00:00:00:00:03"}}`,
			args: "IgnoreUnknown=1;MAC=0a:00:00:00:00:01", check: func(t *testing.T, n *NetConf) {
				if n.mac.String() != "0a:00:00:00:00:03" {
					t.Errorf("mac = %s, want runtimeConfig's", n.mac)
				}
			}},
		{name: "mac from CNI_ARGS", json: `{` + base + `}`, args: "K8S_POD_NAME=x;MAC=0a:00:00:00:00:01", check: func(t *testing.T, n *NetConf) {
			if n.mac.String() != "0a:00:00:00:00:01" {
				t.Errorf("mac = %s", n.mac)
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
