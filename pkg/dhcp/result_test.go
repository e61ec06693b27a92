package dhcp

import (
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

func ack(t *testing.T, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(net.IPv4(10, 0, 0, 7))}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestResult(t *testing.T) {
	mask := dhcpv4.WithNetmask(net.CIDRMask(24, 32))
	router := dhcpv4.WithRouter(net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2))
	static := dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionStaticRoutingTable, Value: dhcpv4.OptionGeneric{Data: []byte{192, 0, 2, 0, 10, 0, 0, 254, 10, 9, 0, 0, 10, 0, 0, 253}}})
	classless := dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
		&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4(198, 51, 100, 0).To4(), Mask: net.CIDRMask(24, 32)}, Router: net.IPv4(10, 0, 0, 9).To4()},
		&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4(10, 0, 0, 0).To4(), Mask: net.CIDRMask(24, 32)}, Router: net.IPv4zero.To4()},
	))
	for _, tc := range []struct {
		name     string
		mods     []dhcpv4.Modifier
		priority int
		addr     string
		gw       string
		routes   []string // "dst via gw [link]"
		dns      string
		err      string
	}{
		{name: "address and router", mods: []dhcpv4.Modifier{mask, router}, addr: "10.0.0.7/24", gw: "10.0.0.1", routes: []string{"0.0.0.0/0 via 10.0.0.1"}},
		{name: "no router: no gateway, no routes", mods: []dhcpv4.Modifier{mask}, addr: "10.0.0.7/24"},
		{name: "static routes are classful, then the default", mods: []dhcpv4.Modifier{mask, router, static}, addr: "10.0.0.7/24", gw: "10.0.0.1",
			routes: []string{"192.0.2.0/24 via 10.0.0.254", "10.0.0.0/8 via 10.0.0.253", "0.0.0.0/0 via 10.0.0.1"}},
		{name: "classless routes replace static and default", mods: []dhcpv4.Modifier{mask, router, static, classless}, addr: "10.0.0.7/24", gw: "10.0.0.1",
			routes: []string{"198.51.100.0/24 via 10.0.0.9", "10.0.0.0/24 via 0.0.0.0 link"}},
		{name: "priority on every route", mods: []dhcpv4.Modifier{mask, router, static}, priority: 7, addr: "10.0.0.7/24", gw: "10.0.0.1",
			routes: []string{"192.0.2.0/24 via 10.0.0.254", "10.0.0.0/8 via 10.0.0.253", "0.0.0.0/0 via 10.0.0.1"}},
		{name: "dns", mods: []dhcpv4.Modifier{mask, dhcpv4.WithDNS(net.IPv4(10, 0, 0, 53)), dhcpv4.WithOption(dhcpv4.OptDomainName("example.test")),
			dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{"a.test", "b.test"}}))},
			addr: "10.0.0.7/24", dns: "[10.0.0.53] example.test [a.test b.test]"},
		{name: "no subnet mask", mods: []dhcpv4.Modifier{router}, err: "subnet mask"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Result(ack(t, tc.mods...), tc.priority)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ip := res.IPs[0]
			if ip.Address.String() != tc.addr || (tc.gw == "" && ip.Gateway != nil) || (tc.gw != "" && ip.Gateway.String() != tc.gw) {
				t.Errorf("IP %s gw %v, want %s gw %q", ip.Address.String(), ip.Gateway, tc.addr, tc.gw)
			}
			var got []string
			for _, r := range res.Routes {
				s := r.Dst.String() + " via " + r.GW.String()
				if r.Scope != nil {
					s += " link"
				}
				if r.Priority != tc.priority {
					t.Errorf("route %s priority %d, want %d", s, r.Priority, tc.priority)
				}
				got = append(got, s)
			}
			if strings.Join(got, ", ") != strings.Join(tc.routes, ", ") {
				t.Errorf("routes %q, want %q", got, tc.routes)
			}
			if tc.dns != "" {
				if d := res.DNS; strings.Join([]string{"[" + strings.Join(d.Nameservers, " ") + "]", d.Domain, "[" + strings.Join(d.Search, " ") + "]"}, " ") != tc.dns {
					t.Errorf("DNS %+v, want %s", d, tc.dns)
				}
			}
		})
	}
}
