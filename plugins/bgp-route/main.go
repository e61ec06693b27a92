// Command bgp-route is a chained CNI plugin that announces pods over BGP through a speaker (netloomd,
// or a stock gobgpd): each pod address as a /32 or /128, or the node's pod CIDR. See README.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("bgp-route", skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus})
}
