package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex, "")
		f.Add(ex, "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;MAC=0a:58:0a:58:00:07")
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"bridge"`
	for _, s := range []string{
		`{` + base + `,"vlanTrunk":[{"minID":10,"maxID":12},{"id":11},{"id":3}]}`,
		`{` + base + `,"vlanTrunk":[{"minID":1,"maxID":4094}]}`,
		`{` + base + `,"bridge":"abcdefghijklm","vlan":100,"isGateway":true}`,
		`{` + base + `,"ipMasqBackend":"nftables","ipMasq":true,"mtu":9000}`,
		`{` + base + `,"args":{"cni":{"mac":"0a:00:00:00:00:02"}},"runtimeConfig":{"mac":"0a:00:00:00:00:03"}}`,
		`{` + base + `,"disableContainerInterface":true,"ipam":{"type":"host-local"}}`,
		`{` + base + `,"mtu":"1500"}`,
		`{` + base,
	} {
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		n, err := parseConfig(stdin, cniArgs)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if err := conf.ValidateIfName("bridge", n.Bridge); err != nil {
			t.Fatalf("accepted bridge %q: %v", n.Bridge, err)
		}
		if n.MTU != 0 && (n.MTU < conf.MinMTU || n.MTU > conf.MaxMTU) {
			t.Fatalf("accepted mtu %d", n.MTU)
		}
		if n.Vlan < 0 || n.Vlan > maxVlanID {
			t.Fatalf("accepted vlan %d", n.Vlan)
		}
		for i, v := range n.trunk {
			if v < 1 || v > maxVlanID || (i > 0 && v <= n.trunk[i-1]) {
				t.Fatalf("trunk %v is not a sorted set of VLAN ids", n.trunk)
			}
		}
		if n.HairpinMode && n.PromiscMode {
			t.Fatal("accepted hairpinMode with promiscMode")
		}
		if n.IsDefaultGateway && !n.IsGateway {
			t.Fatal("isDefaultGateway without isGateway")
		}
		if n.hasL3 != (n.IPAM.Type != "") || (n.hasL3 && n.DisableContainerInterface) {
			t.Fatalf("hasL3 %v with ipam %q, disableContainerInterface %v", n.hasL3, n.IPAM.Type, n.DisableContainerInterface)
		}
		if n.masqBE != "" && n.masqBE != "iptables" && n.masqBE != "nftables" {
			t.Fatalf("masquerade backend %q", n.masqBE)
		}
		if n.IsGateway && n.Vlan != 0 {
			if err := conf.ValidateIfName("bridge", link.VlanGatewayName(n.Bridge, n.Vlan)); err != nil {
				t.Fatalf("VLAN gateway name of an accepted config: %v", err)
			}
		}
		if n.mac != nil && (len(n.mac) != 6 || n.mac[0]&1 != 0) {
			t.Fatalf("accepted MAC %s", n.mac)
		}
	})
}
