// Command dhcp is netloom's DHCP IPAM plugin and, as `dhcp daemon [flags]`, the node daemon that holds
// the pods' leases and renews them: a drop-in for the reference dhcp plugin. See README.md.
package main

import (
	"os"

	"github.com/netloom/netloom/pkg/dhcp"
	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "daemon" {
		os.Exit(runDaemon(os.Args[2:]))
	}
	plugin.Main("dhcp", plugin.Verbs[*dhcp.NetConf]{Parse: parseArgs, Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}.Funcs())
}
