package main

import (
	"net"
	"slices"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

func ipc(cidr, gw string) *current.IPConfig {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		panic(err)
	}
	c := &current.IPConfig{Address: net.IPNet{IP: ip, Mask: n.Mask}}
	if gw != "" {
		c.Gateway = net.ParseIP(gw)
	}
	return c
}

func route(dst, gw string) *types.Route {
	_, n, err := net.ParseCIDR(dst)
	if err != nil {
		panic(err)
	}
	r := &types.Route{Dst: *n}
	if gw != "" {
		r.GW = net.ParseIP(gw)
	}
	return r
}

// applyGateways: the gateway of each IP (IPAM's, or the subnet's first address when the bridge is the
// gateway), the default routes isDefaultGateway adds, and the addresses the bridge gets.
func TestApplyGateways(t *testing.T) {
	for _, tc := range []struct {
		name           string
		isGW, isDefGW  bool
		ips            []*current.IPConfig
		routes         []*types.Route
		wantGWs        []string // per IP, "" none
		wantBridge     []string
		wantNewDefault []string // default routes added, "dst via gw"
	}{
		{name: "not the gateway: nothing filled in", ips: []*current.IPConfig{ipc("10.1.0.5/24", "")}, wantGWs: []string{""}},
		{name: "gateway: the subnet's first address", isGW: true, ips: []*current.IPConfig{ipc("10.1.0.5/24", "")},
			wantGWs: []string{"10.1.0.1"}, wantBridge: []string{"10.1.0.1/24"}},
		{name: "IPAM's gateway wins", isGW: true, ips: []*current.IPConfig{ipc("10.1.0.5/24", "10.1.0.254")},
			wantGWs: []string{"10.1.0.254"}, wantBridge: []string{"10.1.0.254/24"}},
		{name: "default gateway adds a default route per family", isGW: true, isDefGW: true,
			ips:     []*current.IPConfig{ipc("10.1.0.5/24", ""), ipc("fd00:1::5/64", "")},
			wantGWs: []string{"10.1.0.1", "fd00:1::1"}, wantBridge: []string{"10.1.0.1/24", "fd00:1::1/64"},
			wantNewDefault: []string{"0.0.0.0/0 via 10.1.0.1", "::/0 via fd00:1::1"}},
		{name: "an IPAM default route is kept, not doubled", isGW: true, isDefGW: true,
			ips: []*current.IPConfig{ipc("10.1.0.5/24", "")}, routes: []*types.Route{route("0.0.0.0/0", "10.1.0.9")},
			wantGWs: []string{"10.1.0.1"}, wantBridge: []string{"10.1.0.1/24"}},
		{name: "one default route per family, not per IP", isGW: true, isDefGW: true,
			ips:     []*current.IPConfig{ipc("10.1.0.5/24", ""), ipc("10.2.0.5/16", "")},
			wantGWs: []string{"10.1.0.1", "10.2.0.1"}, wantBridge: []string{"10.1.0.1/24", "10.2.0.1/16"},
			wantNewDefault: []string{"0.0.0.0/0 via 10.1.0.1"}},
		{name: "a /32 pod address: gateway is the next address", isGW: true, ips: []*current.IPConfig{ipc("10.1.0.5/32", "")},
			wantGWs: []string{"10.1.0.6"}, wantBridge: []string{"10.1.0.6/32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := &current.Result{IPs: tc.ips, Routes: slices.Clone(tc.routes)}
			gws := applyGateways(res, &NetConf{IsGateway: tc.isGW, IsDefaultGateway: tc.isDefGW})
			for i, ip := range res.IPs {
				if ip.Interface == nil || *ip.Interface != ifContainer {
					t.Errorf("ips[%d] not on the container interface", i)
				}
				got := ""
				if ip.Gateway != nil {
					got = ip.Gateway.String()
				}
				if got != tc.wantGWs[i] {
					t.Errorf("ips[%d] gateway %q, want %q", i, got, tc.wantGWs[i])
				}
			}
			var bridge []string
			for _, p := range gws {
				bridge = append(bridge, p.String())
			}
			if !slices.Equal(bridge, tc.wantBridge) {
				t.Errorf("bridge addresses %v, want %v", bridge, tc.wantBridge)
			}
			var added []string
			for _, r := range res.Routes[len(tc.routes):] {
				added = append(added, r.Dst.String()+" via "+r.GW.String())
			}
			if !slices.Equal(added, tc.wantNewDefault) {
				t.Errorf("added routes %v, want %v", added, tc.wantNewDefault)
			}
		})
	}
}
