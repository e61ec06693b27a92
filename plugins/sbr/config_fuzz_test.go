package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex)
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"sbr"`
	for _, s := range []string{`{` + base + `}`, `{` + base + `,"table":100}`, `{` + base + `,"table":-1}`, `{` + base + `,"table":"x"}`, `{` + base} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		n, err := parseConfig(stdin)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if n.Table != nil && (*n.Table <= 0 || *n.Table > 1<<32-1) {
			t.Fatalf("accepted table %d", *n.Table)
		}
	})
}
