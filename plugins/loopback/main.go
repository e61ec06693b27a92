// Command loopback brings up the lo interface in a container's network namespace. See README.md.
package main

import (
	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	cmds := plugin.Verbs[*types.NetConf]{Parse: parseArgs, Add: cmdAdd, Check: cmdCheck}.Funcs()
	// DEL, GC and STATUS need nothing from the configuration: a DEL must work whatever it says.
	cmds.Del, cmds.GC, cmds.Status = cmdDel, cmdGC, cmdStatus
	plugin.Main("loopback", cmds)
}
