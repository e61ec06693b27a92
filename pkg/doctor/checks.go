package doctor

import "github.com/netloom/netloom/pkg/inventory"

// Checks are netloom doctor's checks in report order: what the runtime needs to call the plugins first,
// then the node's kernel settings, then the state of running pods, then what netloom's own agents hold.
func Checks() []Check {
	return []Check{
		{Name: "plugin-binaries", Run: checkBinaries},
		{Name: "conflist", Run: checkConflists},
		{Name: "forwarding", Run: checkForwarding},
		{Name: "br-netfilter", Run: checkBrNetfilter},
		{Name: "forward-policy", Run: checkForwardPolicy},
		{Name: "pod-cidrs", Run: checkPodCIDRs},
		{Name: "hairpin", Run: checkHairpin},
		{Name: "mtu", Run: checkMTU},
		Leftovers(inventory.Dirs{}),
		OverlayPeers(),
		Netloomd("", ""),
	}
}
