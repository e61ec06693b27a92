// Command ipvlan gives a container an address on the node's network that shares the master's MAC: an
// ipvlan link on a master interface, created straight in the container's namespace. See README.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("ipvlan", skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus})
}
