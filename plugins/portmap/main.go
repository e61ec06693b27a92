// Command portmap forwards host ports to a pod (Kubernetes hostPort, `podman run -p`) with nftables or
// iptables. It runs chained after the plugin that gives the pod its addresses. See README.md.
package main

import "github.com/netloom/netloom/pkg/plugin"

func main() {
	cmds := plugin.Verbs[*NetConf]{Parse: parseArgs, Add: cmdAdd, Del: cmdDel, Check: cmdCheck, Status: cmdStatus}.Funcs()
	// GC reads only the network's name: it must clean up whatever backend the configuration names now.
	cmds.GC = cmdGC
	plugin.Main("portmap", cmds)
}
