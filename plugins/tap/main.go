// Command tap gives a container a persistent tap device (for a VM runtime such as KubeVirt or Kata to
// attach to), optionally on a bridge in the container and with IPAM's addresses. It is a drop-in for
// the reference tap plugin. See README.md.
package main

import (
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

func main() {
	plugin.Main("tap", plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: hostlink.Del[*NetConf], Check: hostlink.Check[*NetConf], GC: hostlink.GC[*NetConf], Status: hostlink.Status[*NetConf]}.Funcs())
}
