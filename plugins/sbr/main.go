// Command sbr sets up source-based routing for a pod's interface made by the plugin before it in the
// chain: traffic from each of the interface's addresses is routed by a table of its own. A drop-in for
// the reference sbr plugin. See README.md.
package main

import "github.com/netloom/netloom/pkg/plugin"

func main() {
	plugin.Main("sbr", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}.Funcs())
}
