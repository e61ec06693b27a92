// Command macvlan gives a container its own MAC address on the node's network: a macvlan link on a
// master interface, created straight in the container's namespace. See README.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("macvlan", skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus})
}
