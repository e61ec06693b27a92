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
	const base = `"cniVersion":"1.0.0","name":"n","type":"ptp"`
	for _, s := range []string{
		`{` + base + `,"ipam":{"type":"host-local","subnet":"10.1.1.0/24"}}`,
		`{` + base + `,"ipam":{"type":"host-local"},"ipMasq":true,"ipMasqBackend":"nftables","mtu":9000}`,
		`{` + base + `,"ipam":{"type":"host-local"},"ipMasqBackend":"pf"}`,
		`{` + base + `,"ipam":{"type":"host-local"},"dns":{"nameservers":["10.1.1.1"],"search":["svc"]}}`,
		`{` + base + `,"mtu":"1500"}`,
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
		if n.MTU != 0 && (n.MTU < conf.MinMTU || n.MTU > conf.MaxMTU) {
			t.Fatalf("accepted mtu %d", n.MTU)
		}
		if n.IPAM.Type == "" {
			t.Fatal("accepted a config without an ipam type")
		}
		if n.masqBE != "" && n.masqBE != "iptables" && n.masqBE != "nftables" {
			t.Fatalf("masquerade backend %q", n.masqBE)
		}
	})
}
