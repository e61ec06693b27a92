package portmap

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FlushStaleUDP deletes the conntrack entries of UDP flows to the host ports of ms. Without it a UDP
// client that kept sending to a host port while its pod restarted keeps hitting the old, now dead,
// entry (conntrack never re-evaluates NAT for an existing flow), and the new pod never sees a packet.
// TCP needs nothing: a new connection is a new flow.
func FlushStaleUDP(ms []Mapping) error {
	type target struct {
		family netlink.InetFamily
		key    HostKey
	}
	seen := map[target]bool{}
	var filters []netlink.CustomConntrackFilter
	var families []netlink.InetFamily
	for _, m := range ms {
		if m.Protocol != UDP {
			continue
		}
		fam := netlink.InetFamily(unix.AF_INET)
		if m.PodIP.Is6() {
			fam = unix.AF_INET6
		}
		t := target{fam, m.Key()}
		if seen[t] {
			continue
		}
		seen[t] = true
		f := &netlink.ConntrackFilter{}
		if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return err
		}
		if err := f.AddPort(netlink.ConntrackOrigDstPort, m.HostPort); err != nil {
			return err
		}
		if m.HostIP.IsValid() && !m.HostIP.IsUnspecified() {
			if err := f.AddIP(netlink.ConntrackOrigDstIP, net.IP(m.HostIP.AsSlice())); err != nil {
				return err
			}
		}
		filters = append(filters, f)
		families = append(families, fam)
	}
	for i, f := range filters {
		if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, families[i], f); err != nil {
			return fmt.Errorf("flush UDP conntrack entries: %w", err)
		}
	}
	return nil
}
