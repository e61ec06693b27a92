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
	const base = `"cniVersion":"1.0.0","name":"n","type":"vlan"`
	for _, s := range []string{
		`{` + base + `,"master":"eth0","vlanId":100,"mtu":1400,"linkInContainer":true,"ipam":{"type":"host-local","subnet":"10.1.2.0/24"}}`,
		`{` + base + `,"master":"eth0.1:x","vlanId":4095}`,
		`{` + base + `,"vlanId":-3,"mtu":67}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		n, err := parseConfig(stdin)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if err := conf.ValidateIfName("master", n.Master); err != nil {
			t.Fatalf("accepted master %q", n.Master)
		}
		if n.VlanID < 0 || n.VlanID > maxVlanID {
			t.Fatalf("accepted vlanId %d", n.VlanID)
		}
		if n.MTU != 0 && (n.MTU < conf.MinMTU || n.MTU > conf.MaxMTU) {
			t.Fatalf("accepted mtu %d", n.MTU)
		}
	})
}
