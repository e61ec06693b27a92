package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
	"github.com/netloom/netloom/pkg/conf"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex, "")
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"tap"`
	for _, s := range []string{
		`{` + base + `,"multiQueue":true,"mtu":9000,"mac":"0a:00:00:00:00:02","owner":107,"group":107,"bridge":"br0","ipam":{"type":"static"}}`,
		`{` + base + `,"selinuxContext":"system_u:system_r:container_t:s0","runtimeConfig":{"mac":"0a:00:00:00:00:03"},"args":{}}`,
		`{` + base + `,"owner":4294967295,"mtu":67}`,
	} {
		f.Add([]byte(s), "IgnoreUnknown=1;MAC=0a:58:00:00:00:01")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		n, err := parseConfig(stdin, cniArgs)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if n.MTU != 0 && (n.MTU < conf.MinMTU || n.MTU > conf.MaxMTU) {
			t.Fatalf("accepted mtu %d", n.MTU)
		}
		if n.Bridge != "" {
			if err := conf.ValidateIfName("bridge", n.Bridge); err != nil {
				t.Fatalf("accepted bridge %q", n.Bridge)
			}
		}
		if n.mac != nil && (len(n.mac) != 6 || n.mac[0]&1 != 0) {
			t.Fatalf("accepted MAC %s", n.mac)
		}
		if s := spec(n, "tap0"); s.VnetHdr && (n.Owner == nil || n.Group == nil || n.SelinuxContext != "") {
			t.Fatalf("vnet_hdr for %+v", n)
		}
	})
}
