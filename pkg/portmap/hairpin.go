package portmap

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/sysctl"
)

// EnableHairpin lets a pod reach its own host ports through the bridge: it turns hairpin mode on for the
// bridge port hostIf (the host end of the pod's veth), so the bridge may send the pod's DNATed packets
// back out of the port they came in by. Without it, a pod connecting to hostIP:hostPort never reaches
// itself unless the bridge plugin's hairpinMode is set.
//
// Hairpin reflects the pod's multicast too, its IPv6 neighbour solicitations included: a duplicate
// address detection probe would come back and the kernel would mark the pod's address as a duplicate
// (dadfailed) and never use it. So it is only done when DAD cannot run on podIf: IPv6 is off there or
// accept_dad is 0, which the bridge plugin sets unless "enabledad" is true. done is true when hairpin is
// on, set here or before (by the bridge plugin's hairpinMode). It is false when it was not done: hostIf
// is no bridge port (why is empty: there is nothing to do), or DAD may run (why says so).
func EnableHairpin(hostIf, podNetNS, podIf string) (done bool, why string, err error) {
	p, err := link.PortByName(hostIf)
	if err != nil {
		return false, "", fmt.Errorf("hairpin: host interface: %w", err)
	}
	if !p.OnPort {
		return false, "", nil
	}
	// The bridge plugin's hairpinMode has set it already: nothing to do, and nothing to warn about.
	if p.Hairpin {
		return true, "", nil
	}
	var dad bool
	err = netns.With(podNetNS, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			var err error
			dad, err = dadMayRun(podIf)
			return err
		})
	})
	if err != nil {
		return false, "", fmt.Errorf("hairpin: %w", err)
	}
	if dad {
		return false, fmt.Sprintf("IPv6 duplicate address detection may run on %s in the pod (accept_dad is not 0: the bridge plugin's \"enabledad\", or an IPv4-only network, where it leaves IPv6 and its link-local address alone), and hairpin would reflect its probes", podIf), nil
	}
	if err := netlink.LinkSetHairpin(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: p.Index, Name: hostIf}}, true); err != nil {
		return false, "", fmt.Errorf("hairpin: set hairpin mode on %q: %w", hostIf, err)
	}
	return true, "", nil
}

// dadMayRun tells whether IPv6 duplicate address detection can run on ifname, in the calling thread's
// namespace.
func dadMayRun(ifname string) (bool, error) {
	if v, err := sysctl.Get(sysctl.IPv6Conf(ifname, "disable_ipv6")); errors.Is(err, fs.ErrNotExist) || strings.TrimSpace(v) == "1" {
		return false, nil
	} else if err != nil {
		return true, err
	}
	v, err := sysctl.Get(sysctl.IPv6Conf(ifname, "accept_dad"))
	if err != nil {
		return true, err
	}
	return strings.TrimSpace(v) != "0", nil
}
