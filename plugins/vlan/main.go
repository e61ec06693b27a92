// Command vlan gives a container an 802.1Q VLAN sub-interface of a master interface (on the node, or in
// the container with linkInContainer), with IPAM's addresses. It is a drop-in for the reference vlan
// plugin. See README.md.
package main

import (
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("vlan", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: hostlink.Del[*NetConf], Check: hostlink.Check[*NetConf], GC: hostlink.GC[*NetConf], Status: hostlink.Status[*NetConf]}.Funcs())
}
