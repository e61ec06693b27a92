package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
	"github.com/netloom/netloom/pkg/conf"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex)
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"vrf"`
	for _, s := range []string{`{` + base + `,"vrfname":"blue"}`, `{` + base + `,"vrfname":"blue","table":10}`, `{` + base + `,"table":-1}`, `{` + base + `,"vrfname":"a/b"}`, `{` + base} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		n, err := parseConfig(stdin)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if conf.ValidateIfName("vrfname", n.VRFName) != nil || n.Table < 0 || n.Table > 1<<32-1 {
			t.Fatalf("accepted %+v", n)
		}
	})
}
