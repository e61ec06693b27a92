// Command ipvlan gives a container an address on the node's network that shares the master's MAC: an
package main

import (
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("ipvlan", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: hostlink.Del[*NetConf], Check: hostlink.Check[*NetConf], GC: hostlink.GC[*NetConf], Status: hostlink.Status[*NetConf]}.Funcs())
}
