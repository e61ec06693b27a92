// Command host-local leases IP addresses from ranges, keeping the leases in files on the node. It is a
// drop-in for the reference host-local IPAM plugin and shares its on-disk store. See README.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("host-local", skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus})
}
