// Command host-device moves an existing host interface into a container under CNI_IFNAME and gives it
// back under its own name on DEL. It is a drop-in for the reference host-device plugin. See README.md.
package main

import (
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("host-device", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: hostlink.GC[*NetConf], Status: hostlink.Status[*NetConf]}.Funcs())
}
