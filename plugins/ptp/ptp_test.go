package main

import (
	"net"
	"slices"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

func ipc(t *testing.T, cidr, gw string) *current.IPConfig {
	t.Helper()
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatal(err)
	}
	c := &current.IPConfig{Interface: current.Int(ifContainer), Address: net.IPNet{IP: ip, Mask: n.Mask}}
	if gw != "" {
		c.Gateway = net.ParseIP(gw)
	}
	return c
}

func strs[T interface{ String() string }](xs []T) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

func TestPodAndHostConfig(t *testing.T) {
	_, def4, _ := net.ParseCIDR("0.0.0.0/0")
	_, def6, _ := net.ParseCIDR("::/0")
	res := &current.Result{
		IPs:    []*current.IPConfig{ipc(t, "10.1.1.5/24", "10.1.1.1"), ipc(t, "fd00:1::5/64", "fd00:1::1")},
		Routes: []*types.Route{{Dst: *def4}, {Dst: *def6, GW: net.ParseIP("fd00:1::1")}},
	}
	pod, err := podConfig(res, ifContainer)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strs(pod.Addrs), []string{"10.1.1.5/24", "fd00:1::5/64"}; !slices.Equal(got, want) {
		t.Errorf("pod addresses %v, want %v", got, want)
	}
	// The gateway's link route must come before anything through the gateway.
	wantRoutes := []string{"10.1.1.1/32 src 10.1.1.5", "10.1.1.0/24 via 10.1.1.1 src 10.1.1.5", "fd00:1::1/128", "fd00:1::/64 via fd00:1::1", "0.0.0.0/0 via 10.1.1.1", "::/0 via fd00:1::1"}
	if got := strs(pod.Routes); !slices.Equal(got, wantRoutes) {
		t.Errorf("pod routes %v, want %v", got, wantRoutes)
	}
	host, err := hostConfig(res, ifContainer)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strs(host.Addrs), []string{"10.1.1.1/32", "fd00:1::1/128"}; !slices.Equal(got, want) {
		t.Errorf("host addresses %v, want %v", got, want)
	}
	if got, want := strs(host.Routes), []string{"10.1.1.5/32", "fd00:1::5/128"}; !slices.Equal(got, want) {
		t.Errorf("host routes %v, want %v", got, want)
	}
}

func TestConfigNeedsGateway(t *testing.T) {
	res := &current.Result{IPs: []*current.IPConfig{ipc(t, "10.1.1.5/24", "")}}
	if _, err := podConfig(res, ifContainer); err == nil {
		t.Error("podConfig accepted an address without a gateway")
	}
	if _, err := hostConfig(res, ifContainer); err == nil {
		t.Error("hostConfig accepted an address without a gateway")
	}
}

func TestOtherInterfacesIgnored(t *testing.T) {
	other := ipc(t, "10.9.9.9/24", "10.9.9.1")
	other.Interface = current.Int(5)
	res := &current.Result{IPs: []*current.IPConfig{ipc(t, "10.1.1.5/24", "10.1.1.1"), other}}
	host, err := hostConfig(res, ifContainer)
	if err != nil {
		t.Fatal(err)
	}
	if got := strs(host.Addrs); !slices.Equal(got, []string{"10.1.1.1/32"}) {
		t.Errorf("host addresses %v", got)
	}
}
