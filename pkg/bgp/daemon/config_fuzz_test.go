package daemon

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

func FuzzParseConfig(f *testing.F) {
	example, err := os.ReadFile("../../../conflist-examples/netloomd.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		daemonConfig(neighbor(""), ""),
		daemonConfig(neighbor(`,"password":"`+strings.Repeat("p", 80)+`","ebgpMultihop":255,"holdTime":3,"passive":true`), `,"installRoutes":false,"logLevel":"debug"`),
		daemonConfig(`,"listenPort":-1,"listenAddresses":["10.0.0.1","fd00::1"],"originate":["10.244.1.0/24","fd00:244:1::/64"]`, `,"stateDir":"/tmp/x","api":{"socket":"/run/x.sock"},"metrics":{"listen":"127.0.0.1:9653"}`),
		daemonConfig(`,"neighbors":[{"address":"10.0.0.2","asn":64512,"routeReflectorClient":true},{"address":"10.0.0.2","asn":1}]`, ""),
		daemonConfig(`,"neighbors":[{"address":"10.0.0.2","asn":64513},{"address":"::ffff:10.0.0.3","asn":64513}]`, ""),
		daemonConfig(neighbor(`,"holdTime":2`), ""),
		daemonConfig("", `,"unknownKey":1`),
		daemonConfig("", "") + `{}`,
		`{"bgp":{"asn":"64512"}}`,
		`{"bgp":{"asn":4294967296}}`,
	} {
		f.Add([]byte(s))
	}
	// Found by hand: a neighbour listed as 10.0.0.2 and as ::ffff:10.0.0.2 was configured twice.
	f.Add([]byte(`{"bgp":{"asn":1,"routerID":"10.0.0.1","neighbors":[{"address":"10.0.0.2","asn":2},{"address":"::ffff:10.0.0.2","asn":2}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") || len(err.Error()) == len("config: ") {
				t.Fatalf("error %q does not say it is about the config", err)
			}
			return
		}
		b := c.BGP
		if rid, err := netip.ParseAddr(b.RouterID); b.ASN == 0 || err != nil || !rid.Is4() {
			t.Fatalf("asn %d router ID %q", b.ASN, b.RouterID)
		}
		if b.ListenPort == 0 || b.ListenPort < -1 || b.ListenPort > 65535 {
			t.Fatalf("listenPort %d", b.ListenPort)
		}
		for i, a := range b.ListenAddresses {
			if ip, err := netip.ParseAddr(a); err != nil || ip.Zone() != "" {
				t.Fatalf("listenAddresses[%d] %q", i, a)
			}
		}
		seen := map[netip.Addr]bool{}
		for i, n := range b.Neighbors {
			a, err := netip.ParseAddr(n.Address)
			// One peer written twice, once IPv4-mapped, is still one peer.
			if err != nil || a.Zone() != "" || seen[a.Unmap()] {
				t.Fatalf("neighbors[%d].address %q: not an address, or a peer listed twice", i, n.Address)
			}
			seen[a.Unmap()] = true
			if n.ASN == 0 || n.HoldTime < minHoldTime || n.HoldTime > 65535 || n.EBGPMultihop > 255 || len(n.Password) > 80 ||
				(n.RouteReflectorClient && n.ASN != b.ASN) {
				t.Fatalf("neighbors[%d] = %+v", i, n)
			}
		}
		if len(c.originate) != len(b.Originate) {
			t.Fatalf("%d prefixes to originate of %d", len(c.originate), len(b.Originate))
		}
		for _, p := range c.originate {
			if p != p.Masked() {
				t.Fatalf("originate %s has host bits", p)
			}
		}
		if !strings.HasPrefix(c.API.Socket, "/") || c.StateDir == "" {
			t.Fatalf("api.socket %q stateDir %q", c.API.Socket, c.StateDir)
		}
		switch c.LogLevel {
		case "", "debug", "info", "warn", "error":
		default:
			t.Fatalf("logLevel %q", c.LogLevel)
		}
		_ = c.installRoutes()
	})
}
