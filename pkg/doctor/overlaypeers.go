package doctor

import (
	"fmt"
	"strings"

	"github.com/netloom/netloom/pkg/inventory"
	"github.com/netloom/netloom/pkg/overlay/conflist"
)

// OverlayPeersName is the overlay peer check's name.
const OverlayPeersName = "overlay-peers"

// maxListed bounds how many differences one finding spells out.
const maxListed = 3

// OverlayPeers returns the check that every vxlan-overlay and ipip-overlay network's tunnel device,
// routes, neighbour and FDB entries match its peers and peersFile: what `netloom overlay sync
// --dry-run` compares. Something missing or wrong is a Fail (pods behind that peer are unreachable from
// here); only stale entries of peers that left, or an MTU below the computed one, a Warn.
// Its Fix is the sync the plugins' ADD runs (`netloom overlay sync`).
func OverlayPeers() Check {
	return Check{Name: OverlayPeersName, Run: overlayRun, Fix: overlayFix}
}

func overlayRun(n *Node) []Finding {
	var fs []Finding
	each(n, func(subject, file string, p conflist.Plugin) {
		nw, err := p.Network()
		if err != nil {
			fs = append(fs, Finding{Subject: subject, Status: Fail, Found: err.Error(), Fix: "fix the conflist or peersFile, then netloom overlay sync --conflist " + file})
			return
		}
		missing, tidy, err := nw.DiffSplit()
		switch {
		case err != nil:
			fs = append(fs, Finding{Subject: subject, Status: Unknown, Found: "could not read the tunnel's state: " + err.Error()})
		case len(missing)+len(tidy) == 0:
			fs = append(fs, Finding{Subject: subject, Status: OK, Found: fmt.Sprintf("device %s and its peers' routes, neighbours and FDB entries match", nw.Conf.Device)})
		case len(missing) == 1 && len(tidy) == 0 && strings.HasSuffix(missing[0], " does not exist") && !hasLivePods(n, nw.Conf.Name):
			// A node that has not run a pod of the network yet: the first ADD makes the device.
			fs = append(fs, Finding{Subject: subject, Status: Warn, Found: missing[0] + " and no pod of the network runs here",
				Fix: "nothing until the first pod (its ADD makes it), or netloom overlay sync --conflist " + file})
		case len(missing) > 0:
			fs = append(fs, Finding{Subject: subject, Status: Fail,
				Found: fmt.Sprintf("%d differences from the peers that pods need: %s", len(missing), listed(missing)) + tidyNote(tidy),
				Fix:   "netloom overlay sync --conflist " + file})
		default:
			fs = append(fs, Finding{Subject: subject, Status: Warn,
				Found: fmt.Sprintf("%d stale or undersized entries (pods still connect): %s", len(tidy), listed(tidy)),
				Fix:   "netloom overlay sync --conflist " + file})
		}
	})
	if len(fs) == 0 {
		fs = append(fs, Finding{Status: OK, Found: "no vxlan-overlay or ipip-overlay network"})
	}
	return fs
}

func overlayFix(n *Node) ([]string, error) {
	var did []string
	var errs []string
	each(n, func(subject, _ string, p conflist.Plugin) {
		nw, err := p.Network()
		if err == nil {
			var changes []string
			changes, err = nw.Sync()
			for _, c := range changes {
				did = append(did, subject+": "+c)
			}
		}
		if err != nil {
			errs = append(errs, subject+": "+err.Error())
		}
	})
	if len(errs) > 0 {
		return did, fmt.Errorf("overlay sync: %s", strings.Join(errs, "; "))
	}
	return did, nil
}

// listed spells out up to maxListed lines.
func listed(lines []string) string {
	if len(lines) > maxListed {
		lines = append(lines[:maxListed:maxListed], fmt.Sprintf("and %d more", len(lines)-maxListed))
	}
	return strings.Join(lines, "; ")
}

func tidyNote(tidy []string) string {
	if len(tidy) == 0 {
		return ""
	}
	return fmt.Sprintf(" (and %d stale or undersized)", len(tidy))
}

// hasLivePods says whether the runtime's cache holds a live attachment of network.
func hasLivePods(n *Node, network string) bool {
	inv := inventory.List(inventory.Dirs{CacheDir: n.CacheDir, SkipRules: true})
	for _, a := range inv.Network(network) {
		if a.State != inventory.Dead && a.State != inventory.Uncached {
			return true
		}
	}
	return false
}

// each calls f for every overlay plugin of the node's networks.
func each(n *Node, f func(subject, file string, p conflist.Plugin)) {
	for _, nw := range n.Networks {
		if nw.List == nil {
			continue
		}
		ps, err := conflist.Overlays(nw.List)
		if err != nil {
			continue // the conflist check reports what does not parse
		}
		for _, p := range ps {
			f(nw.List.Name+": "+p.Kind.Plugin, nw.File, p)
		}
	}
}
