package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex, "")
	}
	const head = `"cniVersion":"1.1.0","name":"n","type":"macvlan"`
	for _, s := range []string{
		`{` + head + `,"ipam":{"type":"static","addresses":[{"address":"10.10.0.5/24","gateway":"10.10.0.1"},{"address":"fd10::5/64"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.10.0.1"}],"dns":{"nameservers":["10.10.0.53"]}}}`,
		`{` + head + `,"runtimeConfig":{"ips":["10.30.0.5/24"]},"args":{"cni":{"ips":["::ffff:10.0.0.1/100"]}},"ipam":{}}`,
		`{"cniVersion":"0.2.0","name":"n","ipam":{"addresses":[{"address":"10.10.0.5/24"},{"address":"10.10.1.5/24"}]}}`,
	} {
		f.Add([]byte(s), "IgnoreUnknown=1;IP=10.10.0.6/24,fd10::6/64;GATEWAY=10.10.0.254")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		c, err := parseConfig(stdin, cniArgs)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		for _, a := range c.Addresses {
			if !a.Prefix.IsValid() || a.Prefix.Addr().Is4In6() || a.Prefix.Addr().Zone() != "" {
				t.Fatalf("accepted address %v from %s", a.Prefix, a.Field)
			}
			if a.Gateway.IsValid() && a.Gateway.Is4() != a.Prefix.Addr().Is4() {
				t.Fatalf("gateway %s of address %s", a.Gateway, a.Prefix)
			}
		}
		r := result(c)
		if len(r.IPs) != len(c.Addresses) {
			t.Fatalf("%d IPs for %d addresses", len(r.IPs), len(c.Addresses))
		}
		if err := checkResult(c.Addresses, r); err != nil {
			t.Fatalf("CHECK of the ADD's result: %v", err)
		}
	})
}
