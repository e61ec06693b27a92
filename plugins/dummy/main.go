// Command dummy gives a container a dummy interface holding IPAM's addresses: an address that is the
// pod's own without a link to anywhere (a service VIP, a loopback-like source address). It is a drop-in
// for the reference dummy plugin. See README.md.
package main

import (
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("dummy", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: hostlink.Del[*NetConf], Check: hostlink.Check[*NetConf], GC: hostlink.GC[*NetConf], Status: hostlink.Status[*NetConf]}.Funcs())
}
