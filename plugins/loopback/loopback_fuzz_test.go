package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
)

func FuzzParseConf(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex)
	}
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"lo","type":"loopback","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/p"}],"ips":[{"address":"10.1.0.2/24","interface":0}]}}`,
		`{"cniVersion":"0.2.0","name":"lo","type":"loopback","prevResult":{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.2/24"}}}`,
		`{"cniVersion":"1.1.0","name":"lo","prevResult":{"ips":[{"address":"x"}]}}`,
		`{"cniVersion":"1.1.0","name":"lo","prevResult":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		nc, err := parseConf(stdin)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if nc == nil {
			t.Fatal("nil config without an error")
		}
	})
}
