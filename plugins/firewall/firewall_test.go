package main

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall/forward"
)

func ipConfig(s string) *current.IPConfig {
	ip, n, _ := net.ParseCIDR(s)
	n.IP = ip
	return &current.IPConfig{Address: *n}
}

func TestPodAddrs(t *testing.T) {
	res := &current.Result{IPs: []*current.IPConfig{ipConfig("10.0.0.2/24"), ipConfig("fd00::2/64"), ipConfig("10.0.0.2/24")}}
	got, err := podAddrs(res)
	want := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("podAddrs = %v, %v; want %v (each once, in order)", got, err, want)
	}
	bad := &current.Result{IPs: []*current.IPConfig{{Address: net.IPNet{IP: net.IP{1, 2}, Mask: net.CIDRMask(8, 32)}}}}
	if _, err := podAddrs(bad); conf.Code(err) != conf.CodeInvalidConfig {
		t.Errorf("podAddrs of a bad address: %v, want code 7", err)
	}
}

func TestIsolatedBridge(t *testing.T) {
	withBridge := &current.Result{Interfaces: []*current.Interface{{Name: "cni0"}, {Name: "eth0", Sandbox: "/x"}}}
	for _, tc := range []struct {
		name   string
		policy forward.Policy
		res    *current.Result
		want   string
		code   uint
	}{
		{"open needs no bridge", forward.PolicyOpen, &current.Result{}, "", 0},
		{"same-bridge", forward.PolicySameBridge, withBridge, "cni0", 0},
		{"isolated without interfaces", forward.PolicyIsolated, &current.Result{}, "", conf.CodeInvalidConfig},
		{"isolated with an unnamed first interface", forward.PolicyIsolated, &current.Result{Interfaces: []*current.Interface{{}}}, "", conf.CodeInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := isolatedBridge(&NetConf{policy: tc.policy}, tc.res)
			if got != tc.want || conf.Code(err) != tc.code {
				t.Errorf("isolatedBridge = %q, %v; want %q, code %d", got, err, tc.want, tc.code)
			}
		})
	}
}
