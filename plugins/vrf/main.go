// Command vrf puts a pod's interface, made by the plugin before it in the chain, into a VRF device in the
// pod's namespace, creating the VRF when needed and keeping the interface's IPv6 addresses and routes:
// a drop-in for the reference vrf plugin. See README.md.
package main

import "github.com/netloom/netloom/pkg/plugin"

func main() {
	plugin.Main("vrf", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}.Funcs())
}
