package main

import (
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const head = `"cniVersion":"1.0.0","name":"n","type":"bridge"`
	addrs := func(c *Config) string {
		var s []string
		for _, a := range c.Addresses {
			x := a.Prefix.String()
			if a.Gateway.IsValid() {
				x += " gw " + a.Gateway.String()
			}
			s = append(s, x)
		}
		return strings.Join(s, ", ")
	}
	for _, tc := range []struct {
		name  string
		json  string
		args  string
		code  uint   // 0: valid
		field string // must appear in the error message
		want  string // addrs() of a valid config
	}{
		{name: "addresses", json: `{` + head + `,"ipam":{"type":"static","addresses":[{"address":"10.10.0.5/24","gateway":"10.10.0.1"},{"address":"fd10::5/64"}]}}`,
			want: "10.10.0.5/24 gw 10.10.0.1, fd10::5/64"},
		{name: "no addresses", json: `{` + head + `,"ipam":{"type":"static"}}`, want: ""},
		{name: "CNI_ARGS IP appends, GATEWAY applies to its items only", json: `{` + head + `,"ipam":{"addresses":[{"address":"10.10.0.5/24"}]}}`,
			args: "IgnoreUnknown=1;IP=10.10.0.6/24, fd10::6/64;GATEWAY=10.10.0.254,fd10::1", want: "10.10.0.5/24, 10.10.0.6/24 gw 10.10.0.254, fd10::6/64 gw fd10::1"},
		{name: "GATEWAY outside every subnet is ignored", json: `{` + head + `,"ipam":{}}`, args: "IP=10.10.0.6/24;GATEWAY=10.99.0.1", want: "10.10.0.6/24"},
		{name: "args.cni.ips replace config and CNI_ARGS", json: `{` + head + `,"args":{"cni":{"ips":["10.20.0.5/16"]}},"ipam":{"addresses":[{"address":"10.10.0.5/24","gateway":"10.10.0.1"}]}}`,
			args: "IP=10.10.0.6/24", want: "10.20.0.5/16"},
		{name: "runtimeConfig.ips replace everything", json: `{` + head + `,"runtimeConfig":{"ips":["10.30.0.5/24","fd30::5/64"]},"args":{"cni":{"ips":["10.20.0.5/16"]}},"ipam":{"addresses":[{"address":"10.10.0.5/24"}]}}`,
			args: "IP=10.10.0.6/24", want: "10.30.0.5/24, fd30::5/64"},
		{name: "empty lists replace nothing", json: `{` + head + `,"runtimeConfig":{"ips":[]},"args":{"cni":{"ips":[]}},"ipam":{"addresses":[{"address":"10.10.0.5/24"}]}}`, want: "10.10.0.5/24"},
		{name: "IPv4-mapped address", json: `{` + head + `,"ipam":{"addresses":[{"address":"::ffff:10.10.0.5/120"}]}}`, want: "10.10.0.5/24"},
		{name: "two per family in 0.3.0", json: `{"cniVersion":"0.3.0","name":"n","ipam":{"addresses":[{"address":"10.10.0.5/24"},{"address":"10.10.1.5/24"}]}}`, want: "10.10.0.5/24, 10.10.1.5/24"},

		{name: "no ipam", json: `{` + head + `}`, code: conf.CodeInvalidConfig, field: "ipam"},
		{name: "address without prefix", json: `{` + head + `,"ipam":{"addresses":[{"address":"10.10.0.5"}]}}`, code: conf.CodeInvalidConfig, field: "ipam.addresses[0]"},
		{name: "bad gateway", json: `{` + head + `,"ipam":{"addresses":[{"address":"10.10.0.5/24","gateway":"10.10.0.1/24"}]}}`, code: conf.CodeInvalidConfig, field: "ipam.addresses[0].gateway"},
		{name: "gateway of other family", json: `{` + head + `,"ipam":{"addresses":[{"address":"10.10.0.5/24","gateway":"fd00::1"}]}}`, code: conf.CodeInvalidConfig, field: "ipam.addresses[0].gateway"},
		{name: "bad CNI_ARGS IP", json: `{` + head + `,"ipam":{}}`, args: "IP=10.10.0.6/24,nope", code: conf.CodeInvalidConfig, field: "CNI_ARGS IP (item 1)"},
		{name: "bad CNI_ARGS GATEWAY", json: `{` + head + `,"ipam":{}}`, args: "IP=10.10.0.6/24;GATEWAY=x", code: conf.CodeInvalidConfig, field: "CNI_ARGS GATEWAY"},
		{name: "bad CNI_ARGS IP even when runtimeConfig replaces it", json: `{` + head + `,"runtimeConfig":{"ips":["10.30.0.5/24"]},"ipam":{}}`, args: "IP=10.10.0.6", code: conf.CodeInvalidConfig, field: "CNI_ARGS IP"},
		{name: "bad args.cni.ips", json: `{` + head + `,"args":{"cni":{"ips":["10.20.0.5"]}},"ipam":{}}`, code: conf.CodeInvalidConfig, field: "args.cni.ips[0]"},
		{name: "bad runtimeConfig.ips", json: `{` + head + `,"runtimeConfig":{"ips":["x"]},"ipam":{}}`, code: conf.CodeInvalidConfig, field: "runtimeConfig.ips[0]"},
		{name: "bad route", json: `{` + head + `,"ipam":{"routes":[{"dst":"0.0.0.0"}]}}`, code: conf.CodeInvalidConfig, field: "ipam.routes[0].dst"},
		{name: "addresses wrong type", json: `{` + head + `,"ipam":{"addresses":"10.10.0.5/24"}}`, code: conf.CodeInvalidConfig, field: "addresses"},
		{name: "dns wrong type", json: `{` + head + `,"ipam":{"dns":{"nameservers":"8.8.8.8"}}}`, code: conf.CodeInvalidConfig, field: "nameservers"},
		{name: "two per family in 0.2.0", json: `{"cniVersion":"0.2.0","name":"n","ipam":{"addresses":[{"address":"10.10.0.5/24"},{"address":"10.10.1.5/24"}]}}`, code: conf.CodeInvalidConfig, field: "cniVersion"},
		{name: "an address twice", json: `{` + head + `,"ipam":{"addresses":[{"address":"10.10.0.5/24"}]}}`, args: "IP=10.10.0.5/16;GATEWAY=10.10.0.1",
			code: conf.CodeInvalidConfig, field: "CNI_ARGS IP"},
		{name: "invalid json", json: `{` + head, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tc.json), tc.args)
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("error %q does not name %q", err, tc.field)
				}
				return
			}
			if got := addrs(c); got != tc.want {
				t.Errorf("addresses %q, want %q", got, tc.want)
			}
		})
	}
}

func TestResultAndCheck(t *testing.T) {
	c, err := parseConfig([]byte(`{"cniVersion":"1.1.0","name":"n","ipam":{"addresses":[{"address":"10.10.0.5/24","gateway":"10.10.0.1"},{"address":"fd10::5/64"}],
		"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.10.0.53"],"search":["example.org"]}}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	r := result(c)
	if len(r.IPs) != 2 || r.IPs[0].Address.String() != "10.10.0.5/24" || r.IPs[0].Gateway.String() != "10.10.0.1" || r.IPs[1].Gateway != nil ||
		len(r.Routes) != 1 || r.DNS.Nameservers[0] != "10.10.0.53" {
		t.Fatalf("result %+v", r)
	}
	if err := checkResult(c.Addresses, r); err != nil {
		t.Errorf("CHECK of the ADD's own result: %v", err)
	}
	for name, prev := range map[string]*current.Result{
		"missing address": {IPs: r.IPs[:1]},
		"other gateway":   {IPs: []*current.IPConfig{{Address: r.IPs[0].Address, Gateway: r.IPs[1].Address.IP}, r.IPs[1]}},
	} {
		if err := checkResult(c.Addresses, prev); err == nil {
			t.Errorf("%s: CHECK passed", name)
		}
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
