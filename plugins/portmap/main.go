// Command portmap forwards host ports to a pod (Kubernetes hostPort, `podman run -p`) with nftables or
// iptables. It runs chained after the plugin that gives the pod its addresses. See README.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("portmap", skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus})
}
