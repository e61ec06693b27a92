// Command bridge attaches a container to a Linux bridge on the host through a veth pair. See README.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("bridge", skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus})
}
