package ipcfg

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

func ipnet(s string) net.IPNet {
	ip, n, _ := net.ParseCIDR(s)
	n.IP = ip
	return *n
}

func TestFromResult(t *testing.T) {
	res := &current.Result{
		IPs: []*current.IPConfig{
			{Interface: current.Int(2), Address: ipnet("10.1.0.5/24"), Gateway: net.ParseIP("10.1.0.1")},
			{Interface: current.Int(2), Address: ipnet("fd00::5/64"), Gateway: net.ParseIP("fd00::1")},
			{Interface: current.Int(1), Address: ipnet("10.9.0.5/24")}, // another interface: ignored
		},
		Routes: []*types.Route{
			{Dst: ipnet("0.0.0.0/0")},
			{Dst: ipnet("::/0")},
			{Dst: ipnet("192.168.0.0/16"), GW: net.ParseIP("10.1.0.254")},
		},
	}
	c, err := FromResult(res, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Addrs) != 2 || c.Addrs[0] != netip.MustParsePrefix("10.1.0.5/24") || c.Addrs[1] != netip.MustParsePrefix("fd00::5/64") {
		t.Errorf("addrs = %v", c.Addrs)
	}
	want := []string{"0.0.0.0/0 via 10.1.0.1", "::/0 via fd00::1", "192.168.0.0/16 via 10.1.0.254"}
	if len(c.Routes) != len(want) {
		t.Fatalf("routes = %v", c.Routes)
	}
	for i, w := range want {
		if c.Routes[i].String() != w {
			t.Errorf("route %d = %q, want %q", i, c.Routes[i], w)
		}
	}
}

func TestDuplicateErrorNamesAddresses(t *testing.T) {
	e := &DuplicateError{Link: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("fd00::10/64"), netip.MustParsePrefix("fd00::11/64")}}
	if got := e.Addresses(); got != "fd00::10, fd00::11" {
		t.Errorf("Addresses() = %q", got)
	}
	if msg := e.Error(); !strings.Contains(msg, `"eth0"`) || !strings.Contains(msg, "fd00::10, fd00::11") || !strings.Contains(msg, "dadfailed") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestV6(t *testing.T) {
	c := Config{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("fd00::5/64")}}
	if v6 := c.v6(); len(v6) != 1 || v6[0] != netip.MustParsePrefix("fd00::5/64") || !c.hasV6() {
		t.Errorf("v6() = %v", v6)
	}
	if (Config{Addrs: c.Addrs[:1]}).hasV6() {
		t.Error("an IPv4-only config has IPv6")
	}
}
