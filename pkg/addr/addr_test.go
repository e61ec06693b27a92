package addr

import (
	"net"
	"net/netip"
	"testing"
)

func TestIPNetRoundTrip(t *testing.T) {
	for _, s := range []string{"10.1.2.3/24", "fd00::5/64", "192.168.0.1/32", "::1/128"} {
		p := netip.MustParsePrefix(s)
		n := IPNet(p)
		back, ok := FromIPNet(*n)
		if !ok || back != p {
			t.Errorf("round trip %s -> %v -> %v", p, n, back)
		}
	}
	// A 16-byte IPv4 address from net.ParseIP must come back as IPv4.
	n := net.IPNet{IP: net.ParseIP("10.0.0.9"), Mask: net.CIDRMask(8, 32)}
	if p, _ := FromIPNet(n); p.String() != "10.0.0.9/8" {
		t.Errorf("FromIPNet(v4 in v6 form) = %s", p)
	}
}
