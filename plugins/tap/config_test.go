package main

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"tap"`
	for _, tc := range []struct {
		name  string
		json  string
		args  string
		code  uint   // 0: valid
		field string // must appear in the error message
		mac   string // the MAC picked, for valid configs
	}{
		{name: "defaults", json: `{` + base + `}`},
		{name: "every key", json: `{` + base + `,"multiQueue":true,"mtu":9000,"mac":"0a:00:00:00:00:02","owner":107,"group":107,"selinuxContext":"system_u:system_r:container_t:s0","bridge":"br0","args":{},"ipam":{"type":"static"}}`,
			mac: "0a:00:00:00:00:02"},
		{name: "CNI_ARGS MAC beats mac", json: `{` + base + `,"mac":"0a:00:00:00:00:02"}`, args: "IgnoreUnknown=1;MAC=0a:00:00:00:00:01", mac: "0a:00:00:00:00:01"},
		{name: "runtimeConfig.mac beats all", json: `{` + base + `,"mac":"0a:00:00:00:00:02","runtimeConfig":{"mac":"0a:00:00:00:00:03"}}`, args: "MAC=0a:00:00:00:00:01", mac: "0a:00:00:00:00:03"},
		{name: "mtu too small", json: `{` + base + `,"mtu":10}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "owner negative", json: `{` + base + `,"owner":-1}`, code: conf.CodeInvalidConfig, field: "owner"},
		{name: "group none", json: `{` + base + `,"group":4294967295}`, code: conf.CodeInvalidConfig, field: "group"},
		{name: "owner wrong type", json: `{` + base + `,"owner":"qemu"}`, code: conf.CodeInvalidConfig, field: "owner"},
		{name: "bridge name too long", json: `{` + base + `,"bridge":"abcdefghijklmnop"}`, code: conf.CodeInvalidConfig, field: "bridge"},
		{name: "bad mac", json: `{` + base + `,"mac":"zz"}`, code: conf.CodeInvalidConfig, field: "mac"},
		{name: "multicast CNI_ARGS mac", json: `{` + base + `}`, args: "MAC=01:00:5e:00:00:01", code: conf.CodeInvalidConfig, field: "CNI_ARGS MAC"},
		{name: "multiQueue wrong type", json: `{` + base + `,"multiQueue":"yes"}`, code: conf.CodeInvalidConfig, field: "multiQueue"},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseConfig([]byte(tc.json), tc.args)
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("error %q does not name %q", err, tc.field)
				}
				return
			}
			if got := n.mac.String(); tc.mac != "" && got != tc.mac || tc.mac == "" && n.mac != nil {
				t.Errorf("mac %s, want %q", n.mac, tc.mac)
			}
		})
	}
}

// The tap's flags are the reference's: virtio-net headers with both owner and group (its netlink
// path), IFF_NO_PI otherwise (its `ip tuntap` path).
func TestSpecFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
		vnet bool
	}{
		{"no owner", `{}`, false},
		{"owner only", `{"owner":107}`, false},
		{"owner and group", `{"owner":107,"group":107}`, true},
		{"owner, group and SELinux", `{"owner":107,"group":107,"selinuxContext":"x"}`, false},
	} {
		n, err := parseConfig([]byte(tc.json), "")
		if err != nil {
			t.Fatal(err)
		}
		if s := spec(n, "tap0"); s.VnetHdr != tc.vnet || s.Name != "tap0" {
			t.Errorf("%s: VnetHdr %v, want %v", tc.name, s.VnetHdr, tc.vnet)
		}
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
