package portmap

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/sysctl"
)

// EnableLocalnet lets connections from 127.0.0.0/8 be routed to podIP: it sets route_localnet on the
// host interface the route to podIP leaves through (the bridge, for the bridge plugin). Without it the
// kernel drops such packets as martians after the output hook has DNATed 127.0.0.1:hostPort to the pod.
// IPv6 has no equivalent: ::1 is never routed, so only IPv4 pods need it.
func EnableLocalnet(podIP netip.Addr) error {
	if !podIP.Is4() {
		return nil
	}
	routes, err := netlink.RouteGet(net.IP(podIP.AsSlice()))
	if err != nil || len(routes) == 0 {
		return fmt.Errorf("route_localnet: no route to pod %s: %v", podIP, err)
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return fmt.Errorf("route_localnet: interface of the route to %s: %w", podIP, err)
	}
	return sysctl.Ensure(sysctl.IPv4Conf(l.Attrs().Name, "route_localnet"), "1")
}
