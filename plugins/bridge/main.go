// Command bridge attaches a container to a Linux bridge on the host through a veth pair. See README.md.
package main

import "github.com/netloom/netloom/pkg/plugin"

func main() {
	plugin.Main("bridge", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}.Funcs())
}
