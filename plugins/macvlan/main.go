// Command macvlan gives a container its own MAC address on the node's network: a macvlan link on a
package main

import (
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("macvlan", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: hostlink.Del[*NetConf], Check: hostlink.Check[*NetConf], GC: hostlink.GC[*NetConf], Status: hostlink.Status[*NetConf]}.Funcs())
}
