// Command host-local leases IP addresses from ranges, keeping the leases in files on the node. It is a
// drop-in for the reference host-local IPAM plugin and shares its on-disk store. See README.md.
package main

import (
	"github.com/netloom/netloom/pkg/plugin"
)

func main() { plugin.Main("host-local", commands()) }

func commands() plugin.Funcs {
	cmds := plugin.Verbs[*Config]{Parse: parseArgs, Add: cmdAdd, Check: cmdCheck, Status: cmdStatus}.Funcs()
	// DEL and GC read only where the leases are, so a configuration changed since the ADD still cleans up.
	cmds.Del, cmds.GC = cmdDel, cmdGC
	return cmds
}
