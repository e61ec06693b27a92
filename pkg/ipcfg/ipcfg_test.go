package ipcfg

import (
	"net"
	"net/netip"
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
