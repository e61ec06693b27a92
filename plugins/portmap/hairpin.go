package main

import (
	"fmt"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/portmap"
)

// enableHairpin turns hairpin on for the bridge ports among prevResult's host-side interfaces (the host
// end of the pod's veth), where that is safe (portmap.EnableHairpin); what it could not do is logged.
func enableHairpin(n *NetConf, args *plugin.Args, k firewall.Key) {
	for _, i := range n.prev.Interfaces {
		if i == nil || i.Sandbox != "" || i.Name == "" {
			continue
		}
		done, why, err := portmap.EnableHairpin(i.Name, args.Netns, args.IfName)
		switch {
		case err != nil:
			plugin.LogError(fmt.Sprintf("portmap %s", k), err)
		case !done && why != "":
			plugin.LogError(fmt.Sprintf("portmap %s", k), fmt.Errorf("no hairpin on %s, so the pod cannot reach its own host ports: %s; set the bridge plugin's hairpinMode instead", i.Name, why))
		}
	}
}
