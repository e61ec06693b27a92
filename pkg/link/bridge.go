package link

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/rtattr"
	"github.com/netloom/netloom/pkg/sysctl"
)

// BridgeSpec is what a bridge must look like.
type BridgeSpec struct {
	Name          string
	MTU           int // 0: the kernel's default
	Promisc       bool
	VlanFiltering bool
}

// EnsureBridge creates the bridge or adopts an existing one, and brings it up; created reports whether
// this call made it (not an earlier ADD, nor one that raced it). An existing link of another type under
// that name is an error: netloom never enslaves pods to something that is not a bridge.
func EnsureBridge(s BridgeSpec) (br *netlink.Bridge, created bool, err error) {
	if l, err := ByName(s.Name); err == nil {
		br, ok := l.(*netlink.Bridge)
		if !ok {
			return nil, false, fmt.Errorf("%q exists and is a %s, %w; choose another \"bridge\" name", s.Name, l.Type(), ErrNotBridge)
		}
		if err := adoptBridge(br, s); err != nil {
			return nil, false, err
		}
		return br, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}

	attrs := netlink.NewLinkAttrs()
	attrs.Name = s.Name
	attrs.MTU = s.MTU
	// A MAC given at creation is the bridge's for good. Without one the kernel gives the bridge the
	// lowest MAC among its ports, which changes when that port's pod goes: every other pod then sends
	// to a gateway MAC the bridge no longer answers to, until its neighbour entry expires (the
	// reference sets the bridge's MAC for the same reason).
	mac, err := RandomMAC()
	if err != nil {
		return nil, false, err
	}
	attrs.HardwareAddr = mac
	br = &netlink.Bridge{LinkAttrs: attrs}
	if s.VlanFiltering {
		on := true
		br.VlanFiltering = &on
	}
	err = netlink.LinkAdd(br)
	if err != nil && !errors.Is(err, syscall.EEXIST) {
		if s.VlanFiltering && errors.Is(err, syscall.EOPNOTSUPP) {
			return nil, false, fmt.Errorf("create bridge %q: %w: this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), which \"vlan\" and \"vlanTrunk\" need", s.Name, err)
		}
		return nil, false, fmt.Errorf("create bridge %q: %w", s.Name, err)
	}
	made := err == nil
	// Another ADD may have created it first; from here on both adopt the same bridge.
	l, err := ByName(s.Name)
	if err != nil {
		return nil, made, err
	}
	ours, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, false, fmt.Errorf("%q exists and is a %s, %w; choose another \"bridge\" name", s.Name, l.Type(), ErrNotBridge)
	}
	// netloom owns the bridge's routes; router advertisements from a pod must not add any.
	_ = sysctl.Set(sysctl.IPv6Conf(s.Name, "accept_ra"), "0")
	// No duplicate address detection on the bridge's own IPv6 addresses (its link-local one comes when
	// the first port brings it up): until DAD ends, 1-2 s, the kernel sends no neighbour solicitation
	// from the bridge, so the first packets it forwards to a new pod over IPv6 are lost.
	_ = sysctl.Set(sysctl.IPv6Conf(s.Name, "accept_dad"), "0")
	if err := adoptBridge(ours, s); err != nil {
		return nil, made, err
	}
	return ours, made, nil
}

// RemoveBridgeIfUnused deletes the bridge name when no link is its port: the undo of an ADD that
// created it and failed. A bridge another pod joined in the meantime stays. (An ADD that found the
// bridge just before it is deleted fails to attach its veth, with an error naming the bridge, and the
// runtime's retry makes it again.)
func RemoveBridgeIfUnused(name string) error {
	l, err := ByName(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return nil
	}
	ports, err := Enslaved(l)
	if err != nil || len(ports) > 0 {
		return err
	}
	return Delete(l)
}

func adoptBridge(br *netlink.Bridge, s BridgeSpec) error {
	if s.Promisc && br.Promisc == 0 {
		if err := netlink.SetPromiscOn(br); err != nil {
			return fmt.Errorf("bridge %q: set promiscuous mode: %w", s.Name, err)
		}
	}
	if s.VlanFiltering && (br.VlanFiltering == nil || !*br.VlanFiltering) {
		if err := netlink.BridgeSetVlanFiltering(br, true); err != nil {
			if errors.Is(err, syscall.EOPNOTSUPP) {
				return fmt.Errorf("bridge %q: enable VLAN filtering: %w: this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), which \"vlan\" and \"vlanTrunk\" need", s.Name, err)
			}
			return fmt.Errorf("bridge %q: enable VLAN filtering: %w", s.Name, err)
		}
	}
	if br.Flags&net.FlagUp == 0 {
		return SetUp(br)
	}
	return nil
}

// Bridge returns the bridge called name.
func Bridge(name string) (*netlink.Bridge, error) {
	l, err := ByName(name)
	if err != nil {
		return nil, err
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("%q is a %s, not a bridge", name, l.Type())
	}
	return br, nil
}

// PortSpec is how a bridge port (the host end of a pod's veth) is configured.
type PortSpec struct {
	Hairpin             bool
	Isolated            bool
	Vlan                int   // access VLAN (PVID, untagged); 0: none
	Trunk               []int // tagged VLANs
	PreserveDefaultVlan bool  // keep VLAN 1 on the port when Vlan or Trunk is set
}

// AttachPort enslaves port to br (unless it already is) and applies s. The port stays down; the caller brings it up when the
// container side is ready.
func AttachPort(br *netlink.Bridge, port netlink.Link, s PortSpec) error {
	name := port.Attrs().Name
	if port.Attrs().MasterIndex != br.Index {
		if err := netlink.LinkSetMaster(port, br); err != nil {
			return fmt.Errorf("attach %q to bridge %q: %w", name, br.Name, err)
		}
	}
	// The kernel's defaults are off; writing them costs a round trip each, so only when asked.
	if s.Hairpin {
		if err := netlink.LinkSetHairpin(port, true); err != nil {
			return fmt.Errorf("port %q: set hairpin mode: %w", name, err)
		}
	}
	if s.Isolated {
		if err := netlink.LinkSetIsolated(port, true); err != nil {
			return fmt.Errorf("port %q: set isolated: %w", name, err)
		}
	}
	if s.Vlan == 0 && len(s.Trunk) == 0 {
		return nil
	}
	if !s.PreserveDefaultVlan {
		if err := removePortVlans(port); err != nil {
			return fmt.Errorf("port %q: remove default VLAN: %w", name, err)
		}
	}
	if s.Vlan != 0 {
		if err := netlink.BridgeVlanAdd(port, uint16(s.Vlan), true, true, false, true); err != nil {
			return fmt.Errorf("port %q: add access VLAN %d: %w", name, s.Vlan, err)
		}
	}
	for _, v := range s.Trunk {
		if err := netlink.BridgeVlanAdd(port, uint16(v), false, false, false, true); err != nil {
			return fmt.Errorf("port %q: add trunk VLAN %d: %w", name, v, err)
		}
	}
	// As the reference does: a trunk without an access VLAN carries VLAN 1 untagged.
	if s.Vlan == 0 && len(s.Trunk) > 0 {
		if err := netlink.BridgeVlanAdd(port, 1, true, true, false, true); err != nil {
			return fmt.Errorf("port %q: add native VLAN 1: %w", name, err)
		}
	}
	return nil
}

func removePortVlans(port netlink.Link) error {
	all, err := netlinksafe.BridgeVlanList()
	if err != nil {
		return err
	}
	for _, info := range all[int32(port.Attrs().Index)] {
		if err := netlink.BridgeVlanDel(port, info.Vid, false, false, false, true); err != nil {
			return err
		}
	}
	return nil
}

// VlanGatewayName is the name of bridge br's gateway interface for vlan.
func VlanGatewayName(br string, vlan int) string { return fmt.Sprintf("%s.%d", br, vlan) }

// EnsureVlanGateway returns the interface that carries the gateway address of VLAN vlan on br, creating
// it when missing: a veth pair whose one end, named <br>.<vlan>, stays in the host namespace, and whose
// other end is an access port of vlan on br. This is the reference bridge's layout, so nodes that switch
// keep working.
func EnsureVlanGateway(br *netlink.Bridge, vlan int, preserveDefaultVlan bool) (netlink.Link, error) {
	name := VlanGatewayName(br.Name, vlan)
	if l, err := ByName(name); err == nil {
		return l, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	v, err := CreateVethInto(nil, VethSpec{ContainerIfName: name, MTU: br.MTU, Master: br})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = Remove(v.Host.Attrs().Name)
		}
	}()
	if err := AttachPort(br, v.Host, PortSpec{Vlan: vlan, PreserveDefaultVlan: preserveDefaultVlan}); err != nil {
		return nil, err
	}
	if err := SetUp(v.Host); err != nil {
		return nil, err
	}
	gw, err := ByName(name)
	if err != nil {
		return nil, err
	}
	if err := SetUp(gw); err != nil {
		return nil, err
	}
	ok = true
	return gw, nil
}

// BridgePort is what one link's attributes say of it as a port of a bridge.
type BridgePort struct {
	Index   int  // the link's index
	OnPort  bool // the link is a port of a bridge
	Hairpin bool // hairpin mode is on for the port
}

// PortHairpin tells whether hairpin mode is on for the bridge port with this index. A link that is no
// bridge port reports false.
func PortHairpin(index int) (bool, error) {
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	p, err := readPort(fmt.Sprintf("link %d", index), msg)
	return p.Hairpin, err
}

// PortByName reads the link called name as a bridge port: whether it is one and whether hairpin mode
// is on, in one request (where the netlink library takes one for the link, one for its master and a
// dump for the port's mode).
func PortByName(name string) (BridgePort, error) {
	return readPort(fmt.Sprintf("link %q", name), nl.NewIfInfomsg(unix.AF_UNSPEC), nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
}

// readPort asks for one link and reads its bridge-port attributes (IFLA_INFO_SLAVE_DATA), which the
// netlink library does not decode; its LinkGetProtinfo instead dumps every port of every bridge, which
// grows with the node's pods. what names the link in errors.
func readPort(what string, msg *nl.IfInfomsg, attrs ...nl.NetlinkRequestData) (BridgePort, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.AddData(msg)
	for _, a := range attrs {
		req.AddData(a)
	}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return BridgePort{}, fmt.Errorf("read %s: %w", what, err)
	}
	if len(msgs) != 1 {
		return BridgePort{}, fmt.Errorf("read %s: %d answers, want 1", what, len(msgs))
	}
	info := nl.DeserializeIfInfomsg(msgs[0])
	p := BridgePort{Index: int(info.Index)}
	rattrs, err := nl.ParseRouteAttr(msgs[0][info.Len():])
	if err != nil {
		return p, fmt.Errorf("read %s: %w", what, err)
	}
	linkInfo := rtattr.Value(rattrs, unix.IFLA_LINKINFO)
	if linkInfo == nil {
		return p, nil
	}
	infos, err := nl.ParseRouteAttr(linkInfo)
	if err != nil {
		return p, fmt.Errorf("read %s: link info: %w", what, err)
	}
	if kind := rtattr.Value(infos, nl.IFLA_INFO_SLAVE_KIND); string(bytes.TrimRight(kind, "\x00")) != "bridge" {
		return p, nil
	}
	p.OnPort = true
	port, err := nl.ParseRouteAttr(rtattr.Value(infos, nl.IFLA_INFO_SLAVE_DATA))
	if err != nil {
		return p, fmt.Errorf("read %s: bridge port attributes: %w", what, err)
	}
	mode := rtattr.Value(port, nl.IFLA_BRPORT_MODE)
	p.Hairpin = len(mode) == 1 && mode[0] == 1
	return p, nil
}
