package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/sysctl"
)

// TunnelSpec is what an overlay's tunnel device must look like. Kind picks VXLAN or IP-in-IP; the
// VXLAN-only fields are ignored for IP-in-IP.
type TunnelSpec struct {
	Kind     string     // "vxlan" or "ipip"
	Name     string     // device name
	Local    netip.Addr // this node's underlay address: the outer source
	Underlay int        // ifindex of the underlay interface the outer packets leave by
	MTU      int

	VNI  int              // vxlan
	Port int              // vxlan UDP destination port
	MAC  net.HardwareAddr // vxlan: this node's VTEP MAC
}

// Tunnel kinds.
const (
	KindVXLAN = "vxlan"
	KindIPIP  = "ipip"
)

func (s TunnelSpec) link() netlink.Link {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = s.Name
	attrs.MTU = s.MTU
	if s.Kind == KindIPIP {
		return &netlink.Iptun{LinkAttrs: attrs, Local: s.Local.AsSlice(), Link: uint32(s.Underlay), PMtuDisc: 1, Ttl: 64}
	}
	attrs.HardwareAddr = s.MAC
	return &netlink.Vxlan{
		LinkAttrs:    attrs,
		VxlanId:      s.VNI,
		VtepDevIndex: s.Underlay,
		SrcAddr:      s.Local.AsSlice(),
		Port:         s.Port,
		// Peers are programmed, never learned: no source-MAC learning, no flooding.
		Learning: false,
		// Outer UDP checksums on, over both families, set here rather than left to the kernel's default.
		// With local checksum offload the outer checksum costs the sender next to nothing (it is derived
		// from the inner one's pseudo-header, not from the payload), and it is what lets a receiving NIC
		// that does not parse VXLAN still hand the inner packet up with its checksum checked
		// (CHECKSUM_COMPLETE converted through the outer one) and aggregate it in GRO, instead of the
		// kernel checksumming every inner byte. Zero checksums over IPv6 would also need every peer to
		// accept them (udp6zerocsumrx), which a node cannot know of its peers.
		UDPCSum:        true,
		UDP6ZeroCSumTx: false,
		UDP6ZeroCSumRx: false,
	}
}

// TunnelMismatch returns why the existing link l cannot serve as the tunnel s describes, or "" when it
// can (possibly after EnsureTunnel fixes its MTU and MAC, which it changes in place).
func TunnelMismatch(l netlink.Link, s TunnelSpec) string {
	if l.Type() != s.Kind {
		return fmt.Sprintf("it is a %s device, not %s", l.Type(), s.Kind)
	}
	switch t := l.(type) {
	case *netlink.Vxlan:
		switch {
		case t.VxlanId != s.VNI:
			return fmt.Sprintf("its VNI is %d, not %d", t.VxlanId, s.VNI)
		case t.Port != s.Port:
			return fmt.Sprintf("its port is %d, not %d", t.Port, s.Port)
		case !ipEqual(t.SrcAddr, s.Local):
			return fmt.Sprintf("its local address is %v, not %s", t.SrcAddr, s.Local)
		case t.VtepDevIndex != s.Underlay:
			return fmt.Sprintf("its underlay device is ifindex %d, not %d", t.VtepDevIndex, s.Underlay)
		case t.Learning:
			return "it learns source MACs"
		case t.FlowBased:
			return "it is a flow-based (external) device"
		case t.Group != nil && !t.Group.IsUnspecified():
			return fmt.Sprintf("it floods to %v", t.Group)
		// The checksum flags cannot be changed on a live device.
		case !t.UDPCSum:
			return "it sends no outer UDP checksums (noudpcsum)"
		case t.UDP6ZeroCSumTx:
			return "it sends zero UDP checksums over IPv6 (udp6zerocsumtx)"
		case t.UDP6ZeroCSumRx:
			return "it accepts zero UDP checksums over IPv6 (udp6zerocsumrx)"
		}
	case *netlink.Iptun:
		switch {
		case !ipEqual(t.Local, s.Local):
			return fmt.Sprintf("its local address is %v, not %s", t.Local, s.Local)
		case t.Remote != nil && !t.Remote.IsUnspecified():
			return fmt.Sprintf("it is a point-to-point tunnel to %v", t.Remote)
		case t.ParentIndex != s.Underlay:
			// The kernel reports the tunnel's underlay as IFLA_LINK (ParentIndex); netlink does not decode
			// IFLA_IPTUN_LINK into Link when listing.
			return fmt.Sprintf("its underlay device is ifindex %d, not %d", t.ParentIndex, s.Underlay)
		case t.FlowBased:
			return "it is a flow-based (external) device"
		}
	}
	return ""
}

func ipEqual(ip net.IP, a netip.Addr) bool {
	b, ok := netip.AddrFromSlice(ip)
	return ok && b.Unmap() == a
}

// EnsureTunnel creates the tunnel device s describes, or adopts the one there: an MTU or MAC that
// differs is changed in place; any other difference (VNI, port, local address, underlay) makes it
// delete and recreate the device, since the kernel cannot change those, and the caller then reprograms
// the peers. The device is brought up. recreated says why the device was replaced, "" if it was not.
func EnsureTunnel(s TunnelSpec) (l netlink.Link, recreated string, err error) {
	l, err = ByName(s.Name)
	switch {
	case err == nil:
		if recreated = TunnelMismatch(l, s); recreated == "" {
			return l, "", adoptTunnel(l, s)
		}
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
			return nil, "", fmt.Errorf("replace %s device %q (%s): %w", s.Kind, s.Name, recreated, err)
		}
	case !errors.Is(err, ErrNotFound):
		return nil, "", err
	}
	if err := netlink.LinkAdd(s.link()); err != nil && !errors.Is(err, syscall.EEXIST) {
		if errors.Is(err, syscall.EOPNOTSUPP) {
			return nil, "", fmt.Errorf("create %s device %q: %w: this kernel has no %s support (module %q)", s.Kind, s.Name, err, s.Kind, s.Kind)
		}
		return nil, "", fmt.Errorf("create %s device %q: %w", s.Kind, s.Name, err)
	}
	// A concurrent ADD may have made it first: adopt whatever is there now, once.
	if l, err = ByName(s.Name); err != nil {
		return nil, "", err
	}
	if why := TunnelMismatch(l, s); why != "" {
		return nil, "", fmt.Errorf("%s device %q was just made by someone else and %s", s.Kind, s.Name, why)
	}
	// Routes and neighbours on the tunnel are netloom's; router advertisements must not add any.
	_ = sysctl.Set(sysctl.IPv6Conf(s.Name, "accept_ra"), "0")
	return l, recreated, adoptTunnel(l, s)
}

func adoptTunnel(l netlink.Link, s TunnelSpec) error {
	a := l.Attrs()
	if s.MTU != 0 && a.MTU != s.MTU {
		if err := netlink.LinkSetMTU(l, s.MTU); err != nil {
			return fmt.Errorf("set MTU of %q to %d: %w", s.Name, s.MTU, err)
		}
		a.MTU = s.MTU
	}
	if s.Kind == KindVXLAN && s.MAC != nil && a.HardwareAddr.String() != s.MAC.String() {
		if err := netlink.LinkSetHardwareAddr(l, s.MAC); err != nil {
			return fmt.Errorf("set MAC of %q to %s: %w", s.Name, s.MAC, err)
		}
		a.HardwareAddr = s.MAC
	}
	if a.Flags&net.FlagUp == 0 {
		if err := SetUp(l); err != nil {
			return err
		}
	}
	return nil
}

// KernelHas reports, without changing anything, whether this kernel can make links of kind (a module
// name such as "vxlan" or "ipip"): the module is loaded or built in, or a loadable one is installed
// for the running kernel (creating the first such link loads it). What STATUS asks; an ADD finds out
// by creating the link.
func KernelHas(kind string) bool {
	if _, err := os.Stat(filepath.Join("/sys/module", kind)); err == nil {
		return true
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
	for _, index := range []string{"modules.builtin", "modules.dep"} {
		b, err := os.ReadFile(filepath.Join(dir, index))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			mod, _, _ := strings.Cut(line, ":")
			// kernel/net/ipv4/ipip.ko, possibly compressed (ipip.ko.xz)
			if name, _, _ := strings.Cut(filepath.Base(mod), ".ko"); name == kind {
				return true
			}
		}
	}
	return false
}
