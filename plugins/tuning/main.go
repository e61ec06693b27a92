// Command tuning changes sysctls and interface attributes (MAC, MTU, promiscuous and all-multicast
// mode, transmit queue length) of a pod's interface made by the plugin before it in the chain, and puts
// the interface back at DEL: a drop-in for the reference tuning plugin. See README.md.
package main

import (
	"github.com/netloom/netloom/pkg/plugin"
)

func main() { plugin.Main("tuning", commands()) }

func commands() plugin.Funcs {
	cmds := plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}.Funcs()
	// DEL reads only dataDir: a configuration that ADD refused must not block the chain's DEL.
	cmds.Del = plugin.Verbs[*delConf]{Parse: func(a *plugin.Args) (*delConf, error) { return parseDel(a.StdinData) }, Del: cmdDel}.Funcs().Del
	return cmds
}
