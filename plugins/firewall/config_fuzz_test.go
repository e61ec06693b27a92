package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
	"github.com/netloom/netloom/pkg/firewall/forward"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex)
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"firewall"`
	for _, s := range []string{
		`{` + base + `}`,
		`{` + base + `,"backend":"iptables","iptablesAdminChainName":"MY-ADMIN","ingressPolicy":"isolated"}`,
		`{` + base + `,"backend":"firewalld","firewalldZone":"trusted","ingressPolicy":"same-bridge"}`,
		`{` + base + `,"backend":"nftables"}`,
		`{` + base + `,"iptablesAdminChainName":"-j ACCEPT"}`,
		`{` + base + `,"prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}}`,
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
		if err := forward.CheckChainName(n.admin); err != nil {
			t.Fatalf("accepted admin chain %q: %v", n.admin, err)
		}
		if n.Backend != "" && n.Backend != backendIPTables && n.Backend != backendFirewalld && n.Backend != backendNFTables {
			t.Fatalf("accepted backend %q", n.Backend)
		}
		switch n.policy {
		case forward.PolicyOpen, forward.PolicySameBridge, forward.PolicyIsolated:
		default:
			t.Fatalf("ingress policy %q", n.policy)
		}
		if n.zone == "" {
			t.Fatal("empty firewalld zone")
		}
	})
}
