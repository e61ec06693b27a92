// Command firewall opens the node's firewall for a pod's addresses: a chained meta plugin, run after the
// plugin that gives the pod its addresses (bridge, ptp), and a drop-in for the reference firewall
// plugin. See README.md.
package main

import "github.com/netloom/netloom/pkg/plugin"

func main() {
	plugin.Main("firewall", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}.Funcs())
}
