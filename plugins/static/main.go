// Command static hands an attachment the addresses, routes and DNS its configuration (or the runtime)
// names, leasing nothing. It is a drop-in for the reference static IPAM plugin. See README.md.
package main

import (
	"github.com/netloom/netloom/pkg/plugin"
)

func main() { plugin.Main("static", commands()) }

func commands() plugin.Funcs {
	cmds := plugin.Verbs[*Config]{Parse: parseArgs, Add: cmdAdd, Check: cmdCheck}.Funcs()
	// static keeps no state: DEL, GC and STATUS have nothing to do, and DEL must not fail on a
	// configuration that no longer parses.
	cmds.Del, cmds.GC, cmds.Status = nothing, nothing, nothing
	return cmds
}

func nothing(*plugin.Args) error { return nil }
