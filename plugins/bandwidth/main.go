// Command bandwidth caps a pod's traffic in both directions with tbf qdiscs on the host end of its
// veth and on an ifb device: a drop-in for the reference bandwidth plugin. See README.md.
package main

import "github.com/netloom/netloom/pkg/plugin"

func main() {
	plugin.Main("bandwidth", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}.Funcs())
}
