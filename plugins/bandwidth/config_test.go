package main

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/shaping"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"bandwidth"`
	for _, tc := range []struct {
		name    string
		json    string
		code    uint   // 0: valid
		field   string // must appear in the error message
		limits  *Limits
		shapes  bool
		subnets shaping.Subnets
	}{
		{name: "no limits", json: `{` + base + `}`},
		{name: "every key", json: `{` + base + `,"ingressRate":1000,"ingressBurst":2000,"egressRate":3000,"egressBurst":4000}`,
			limits: &Limits{IngressRate: 1000, IngressBurst: 2000, EgressRate: 3000, EgressBurst: 4000}, shapes: true},
		{name: "unshapedSubnets", json: `{` + base + `,"egressRate":3000,"egressBurst":4000,"unshapedSubnets":["10.0.0.0/8","fd00::1/64"]}`,
			limits: &Limits{EgressRate: 3000, EgressBurst: 4000, UnshapedSubnets: []string{"10.0.0.0/8", "fd00::1/64"}}, shapes: true,
			subnets: shaping.Subnets{List: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/64")}, Exclude: true}},
		{name: "shapedSubnets in runtimeConfig", json: `{` + base + `,"runtimeConfig":{"bandwidth":{"egressRate":3000,"egressBurst":4000,"shapedSubnets":["192.168.0.0/16"]}}}`,
			limits: &Limits{EgressRate: 3000, EgressBurst: 4000, ShapedSubnets: []string{"192.168.0.0/16"}}, shapes: true,
			subnets: shaping.Subnets{List: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}}},
		{name: "empty subnet lists", json: `{` + base + `,"egressRate":3000,"egressBurst":4000,"unshapedSubnets":[],"shapedSubnets":[]}`,
			limits: &Limits{EgressRate: 3000, EgressBurst: 4000, UnshapedSubnets: []string{}, ShapedSubnets: []string{}}, shapes: true},
		{name: "ingress only", json: `{` + base + `,"ingressRate":1000,"ingressBurst":2000}`, limits: &Limits{IngressRate: 1000, IngressBurst: 2000}, shapes: true},
		{name: "zeros", json: `{` + base + `,"ingressRate":0,"ingressBurst":0}`, limits: &Limits{}},
		{name: "runtimeConfig", json: `{` + base + `,"runtimeConfig":{"bandwidth":{"egressRate":3000,"egressBurst":4000}}}`,
			limits: &Limits{EgressRate: 3000, EgressBurst: 4000}, shapes: true},
		// As in the reference: any of the four keys in the network's config hides runtimeConfig's.
		{name: "config keys win over runtimeConfig", json: `{` + base + `,"ingressRate":1000,"ingressBurst":2000,"runtimeConfig":{"bandwidth":{"egressRate":3000,"egressBurst":4000}}}`,
			limits: &Limits{IngressRate: 1000, IngressBurst: 2000}, shapes: true},
		{name: "a zero key hides runtimeConfig too", json: `{` + base + `,"egressRate":0,"runtimeConfig":{"bandwidth":{"egressRate":3000,"egressBurst":4000}}}`,
			limits: &Limits{}},
		// containerd's CRI passes a burst of 2^32-1 bits for "no burst limit".
		{name: "CRI burst", json: `{` + base + `,"runtimeConfig":{"bandwidth":{"ingressRate":1000000,"ingressBurst":4294967295}}}`,
			limits: &Limits{IngressRate: 1000000, IngressBurst: 4294967295}, shapes: true},
		{name: "largest burst", json: `{` + base + `,"egressRate":8,"egressBurst":34359738359}`, limits: &Limits{EgressRate: 8, EgressBurst: 34359738359}, shapes: true},

		{name: "rate without burst", json: `{` + base + `,"ingressRate":1000}`, code: conf.CodeInvalidConfig, field: "ingressBurst"},
		{name: "burst without rate", json: `{` + base + `,"egressBurst":1000}`, code: conf.CodeInvalidConfig, field: "egressRate"},
		{name: "burst of 4 GiB", json: `{` + base + `,"egressRate":1000,"egressBurst":34359738360}`, code: conf.CodeInvalidConfig, field: "egressBurst"},
		{name: "rate under a byte", json: `{` + base + `,"ingressRate":7,"ingressBurst":1000}`, code: conf.CodeInvalidConfig, field: "ingressRate"},
		{name: "runtimeConfig rate without burst", json: `{` + base + `,"runtimeConfig":{"bandwidth":{"egressRate":1000}}}`,
			code: conf.CodeInvalidConfig, field: "runtimeConfig.bandwidth.egressBurst"},
		{name: "negative rate", json: `{` + base + `,"ingressRate":-1,"ingressBurst":1000}`, code: conf.CodeInvalidConfig, field: "ingressRate"},
		{name: "rate as string", json: `{` + base + `,"egressRate":"10M","egressBurst":1000}`, code: conf.CodeInvalidConfig, field: "egressRate"},
		{name: "fractional burst", json: `{` + base + `,"egressRate":1000,"egressBurst":1.5}`, code: conf.CodeInvalidConfig, field: "egressBurst"},
		{name: "bandwidth not an object", json: `{` + base + `,"runtimeConfig":{"bandwidth":[]}}`, code: conf.CodeInvalidConfig, field: "bandwidth"},
		{name: "both subnet lists", json: `{` + base + `,"egressRate":3000,"egressBurst":4000,"unshapedSubnets":["10.0.0.0/8"],"shapedSubnets":["10.1.0.0/16"]}`,
			code: conf.CodeInvalidConfig, field: "shapedSubnets"},
		{name: "subnet not a CIDR", json: `{` + base + `,"egressRate":3000,"egressBurst":4000,"unshapedSubnets":["10.0.0.0/8","hello"]}`,
			code: conf.CodeInvalidConfig, field: "unshapedSubnets[1]"},
		{name: "subnet without length", json: `{` + base + `,"runtimeConfig":{"bandwidth":{"egressRate":3000,"egressBurst":4000,"shapedSubnets":["10.0.0.1"]}}}`,
			code: conf.CodeInvalidConfig, field: "runtimeConfig.bandwidth.shapedSubnets[0]"},
		{name: "subnets not a list", json: `{` + base + `,"unshapedSubnets":"10.0.0.0/8"}`, code: conf.CodeInvalidConfig, field: "unshapedSubnets"},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseConfig([]byte(tc.json))
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("error %q does not name %q", err, tc.field)
				}
				return
			}
			if !reflect.DeepEqual(n.limits, tc.limits) {
				t.Errorf("limits %+v, want %+v", n.limits, tc.limits)
			}
			if !reflect.DeepEqual(n.subnets, tc.subnets) {
				t.Errorf("subnets %+v, want %+v", n.subnets, tc.subnets)
			}
			if n.shapes() != tc.shapes {
				t.Errorf("shapes() = %v, want %v", n.shapes(), tc.shapes)
			}
		})
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
	doccheck.RequireKeysInREADME(t, "README.md", Limits{})
}
