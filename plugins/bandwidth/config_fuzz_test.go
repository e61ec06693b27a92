package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
	"github.com/netloom/netloom/pkg/shaping"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex)
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"bandwidth"`
	for _, s := range []string{
		`{` + base + `}`,
		`{` + base + `,"ingressRate":1000,"ingressBurst":2000,"egressRate":3000,"egressBurst":4000}`,
		`{` + base + `,"runtimeConfig":{"bandwidth":{"egressRate":3000,"egressBurst":4294967295}}}`,
		`{` + base + `,"ingressRate":1000}`,
		`{` + base + `,"egressRate":-1}`,
		`{` + base + `,"egressRate":8,"egressBurst":34359738360}`,
		`{` + base + `,"egressRate":3000,"egressBurst":4000,"unshapedSubnets":["10.0.0.0/8","fd00::/64"]}`,
		`{` + base + `,"egressRate":3000,"egressBurst":4000,"unshapedSubnets":["10.0.0.0/8"],"shapedSubnets":["10.0.0.0/8"]}`,
		`{` + base + `,"runtimeConfig":{"bandwidth":{"ingressRate":3000,"ingressBurst":4000,"shapedSubnets":["hello"]}}}`,
		`{` + base,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		n, err := parseConfig(stdin)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if n.limits == nil {
			return
		}
		if len(n.limits.UnshapedSubnets) > 0 && len(n.limits.ShapedSubnets) > 0 {
			t.Fatal("accepted both subnet lists")
		}
		if len(n.subnets.List) != len(n.limits.UnshapedSubnets)+len(n.limits.ShapedSubnets) {
			t.Fatalf("parsed %d subnets of %+v", len(n.subnets.List), n.limits)
		}
		for _, l := range []shaping.Limit{n.limits.ingress(), n.limits.egress()} {
			if (l.RateBits == 0) != (l.BurstBits == 0) {
				t.Fatalf("accepted a rate without a burst or the other way round: %+v", l)
			}
			if l.RateBits != 0 && l.RateBits < shaping.MinRateBits || l.BurstBits/8 >= shaping.MaxBurstBytes {
				t.Fatalf("accepted %+v", l)
			}
			if l.Set() {
				_ = shaping.TBFFor(l)
			}
		}
	})
}
