package main

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
)

// cmdAdd reports the configured addresses, routes and DNS.
func cmdAdd(c *Config, _ *plugin.Args) error {
	return plugin.PrintResult(result(c), c.CNIVersion)
}

// result is the ADD's result: each address with its subnet's length and host bits, as configured.
func result(c *Config) *current.Result {
	r := &current.Result{CNIVersion: current.ImplementedSpecVersion, Routes: c.Routes, DNS: c.DNS}
	for _, a := range c.Addresses {
		ipc := &current.IPConfig{Address: net.IPNet{IP: a.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(a.Prefix.Bits(), a.Prefix.Addr().BitLen())}}
		if a.Gateway.IsValid() {
			ipc.Gateway = a.Gateway.AsSlice()
		}
		r.IPs = append(r.IPs, ipc)
	}
	return r
}

// cmdCheck verifies that the ADD's result (prevResult) holds every configured address, with the
// configured gateway where one is configured.
func cmdCheck(c *Config, args *plugin.Args) error {
	prev, err := conf.CheckPrevResult(&types.NetConf{CNIVersion: c.CNIVersion, RawPrevResult: c.PrevResult})
	if err != nil {
		return err
	}
	if err := checkResult(c.Addresses, prev); err != nil {
		return fmt.Errorf("static: %s: %w", args.IfName, err)
	}
	return nil
}

// checkResult returns why prev does not carry addrs, or nil.
func checkResult(addrs []Address, prev *current.Result) error {
	for _, a := range addrs {
		var found *current.IPConfig
		for _, ipc := range prev.IPs {
			if ip, ok := netip.AddrFromSlice(ipc.Address.IP); ok && ip.Unmap() == a.Prefix.Addr() {
				found = ipc
				break
			}
		}
		if found == nil {
			return fmt.Errorf("address %s (%s) is not in the ADD result", a.Prefix, a.Field)
		}
		if !a.Gateway.IsValid() {
			continue
		}
		if gw, ok := netip.AddrFromSlice(found.Gateway); !ok || gw.Unmap() != a.Gateway {
			return fmt.Errorf("address %s has gateway %v in the ADD result, %s configures %s", a.Prefix, found.Gateway, a.Field, a.Gateway)
		}
	}
	return nil
}
