package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex)
	}
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","type":"dummy","ipam":{"type":"static","addresses":[{"address":"10.0.0.5/32"}]}}`))
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","type":"dummy","ipam":{}}`))
	f.Fuzz(func(t *testing.T, stdin []byte) {
		n, err := parseConfig(stdin)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if n.IPAMType() == "" {
			t.Fatal("accepted a config without ipam.type")
		}
	})
}
