// Package neigh keeps the permanent neighbour (ARP/NDP) and forwarding-database entries netloom owns:
// the static next hops of routed veths and the VTEP entries of the VXLAN overlay. Every netlink call on
// a neighbour or FDB entry that netloom makes lives here.
package neigh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Entry maps an IP address to a MAC on one link (an ARP or NDP entry).
type Entry struct {
	IP  netip.Addr
	MAC net.HardwareAddr
}

func (e Entry) String() string { return e.IP.String() + " lladdr " + e.MAC.String() }

// FDB maps a MAC on a VXLAN device to the underlay address of the VTEP that owns it.
type FDB struct {
	MAC net.HardwareAddr
	Dst netip.Addr
}

func (f FDB) String() string { return f.MAC.String() + " dst " + f.Dst.String() }

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// Replace installs e on l as a permanent entry, replacing whatever the kernel had for e.IP there.
func Replace(l netlink.Link, e Entry) error {
	err := netlink.NeighSet(&netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		Family:       family(e.IP),
		State:        netlink.NUD_PERMANENT,
		IP:           e.IP.AsSlice(),
		HardwareAddr: e.MAC,
	})
	if err != nil {
		return fmt.Errorf("neighbour %s dev %q: %w", e, l.Attrs().Name, err)
	}
	return nil
}

// Remove deletes the entry for ip on l; already absent is fine.
func Remove(l netlink.Link, ip netip.Addr) error {
	err := netlink.NeighDel(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family(ip), IP: ip.AsSlice()})
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove neighbour %s dev %q: %w", ip, l.Attrs().Name, err)
	}
	return nil
}

// Permanent lists l's permanent entries of both families: the ones netloom (or an administrator) set,
// not what the kernel learned.
func Permanent(l netlink.Link) ([]Entry, error) {
	var out []Entry
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := list(l.Attrs().Index, fam)
		if err != nil {
			return nil, fmt.Errorf("list neighbours of %q: %w", l.Attrs().Name, err)
		}
		for _, n := range ns {
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok || n.State&netlink.NUD_PERMANENT == 0 {
				continue
			}
			out = append(out, Entry{IP: ip.Unmap(), MAC: n.HardwareAddr})
		}
	}
	return out, nil
}

// ReplaceFDB points f.MAC at f.Dst on the VXLAN device l, replacing any other destination for that MAC.
func ReplaceFDB(l netlink.Link, f FDB) error {
	err := netlink.NeighSet(&netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT,
		Flags:        netlink.NTF_SELF,
		IP:           f.Dst.AsSlice(),
		HardwareAddr: f.MAC,
	})
	if err != nil {
		return fmt.Errorf("fdb %s dev %q: %w", f, l.Attrs().Name, err)
	}
	return nil
}

// RemoveFDB deletes f from l; already absent is fine.
func RemoveFDB(l netlink.Link, f FDB) error {
	err := netlink.NeighDel(&netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT,
		Flags:        netlink.NTF_SELF,
		IP:           f.Dst.AsSlice(),
		HardwareAddr: f.MAC,
	})
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove fdb %s dev %q: %w", f, l.Attrs().Name, err)
	}
	return nil
}

// ListFDB returns the entries of the VXLAN device l that point a MAC at a remote VTEP.
func ListFDB(l netlink.Link) ([]FDB, error) {
	ns, err := list(l.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("list fdb of %q: %w", l.Attrs().Name, err)
	}
	var out []FDB
	for _, n := range ns {
		if n.LinkIndex != l.Attrs().Index {
			continue
		}
		dst, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.HardwareAddr == nil {
			continue
		}
		out = append(out, FDB{MAC: n.HardwareAddr, Dst: dst.Unmap()})
	}
	return out, nil
}

// dumpRetries bounds the retries of a dump the kernel interrupted because the table changed under it.
const dumpRetries = 10

// list is netlink.NeighList retried while the kernel reports the dump interrupted (netlinksafe has no
// neighbour variant).
func list(ifindex, fam int) ([]netlink.Neigh, error) {
	var err error
	for range dumpRetries {
		var ns []netlink.Neigh
		ns, err = netlink.NeighList(ifindex, fam)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return ns, err
		}
	}
	return nil, err
}
