package main

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
)

// NetConf is the sbr plugin's configuration: every key of the reference sbr plugin.
type NetConf struct {
	types.NetConf
	// Table is the routing table the rules look up; unset, sbr picks a free table per address from 100
	// on and moves the interface's routes there.
	Table *int `json:"table,omitempty"`
}

func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

// parseConfig decodes and validates stdin. The prevResult is parsed by the verbs that use it (ADD,
// CHECK): DEL needs only "table".
func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	if n.Table != nil && (*n.Table <= 0 || *n.Table > math.MaxUint32) {
		return conf.Invalid("table", "%d is not a routing table; use 1..%d (or omit it to let sbr pick a free table from %d on for each address)", *n.Table, uint32(math.MaxUint32), firstTable)
	}
	return nil
}

// ipConf is one address of the pod's interface with its gateway (zero: none).
type ipConf struct {
	addr netip.Prefix // the address with its subnet's length
	gw   netip.Addr
}

// addressesOf returns prev's addresses on the interface ifName, as the reference picks them: an address
// without an interface index, or whose index names ifName (or no interface of prev), is the
// interface's.
func addressesOf(prev *current.Result, ifName string) ([]ipConf, error) {
	if len(prev.IPs) == 0 {
		return nil, conf.Invalid("prevResult", "has no IP address; sbr routes by the addresses the plugin before it gave %q", ifName)
	}
	var out []ipConf
	for i, ipc := range prev.IPs {
		if idx := ipc.Interface; idx != nil && *idx >= 0 && *idx < len(prev.Interfaces) && prev.Interfaces[*idx].Name != ifName {
			continue
		}
		p, ok := addr.FromIPNet(ipc.Address)
		if !ok {
			return nil, conf.Invalid(fmt.Sprintf("prevResult.ips[%d].address", i), "%v is not an IP prefix", ipc.Address)
		}
		c := ipConf{addr: p}
		if gw, ok := netip.AddrFromSlice(ipc.Gateway); ok {
			c.gw = gw.Unmap()
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, conf.Invalid("prevResult", "has no IP address on %q; sbr routes by the addresses of the interface it is called for", ifName)
	}
	return out, nil
}
