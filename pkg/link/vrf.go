package link

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// ErrNotVRF is wrapped when the link named as a VRF exists and is of another kind.
var ErrNotVRF = errors.New("not a VRF")

// VRF returns the VRF device called name (ErrNotFound, ErrNotVRF wrapped otherwise).
func VRF(name string) (*netlink.Vrf, error) {
	l, err := ByName(name)
	if err != nil {
		return nil, err
	}
	v, ok := l.(*netlink.Vrf)
	if !ok {
		return nil, fmt.Errorf("%q is a %s: %w", name, l.Type(), ErrNotVRF)
	}
	return v, nil
}

// VRFTables returns the routing tables of every VRF device in the namespace.
func VRFTables() ([]uint32, error) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []uint32
	for _, l := range links {
		if v, ok := l.(*netlink.Vrf); ok {
			out = append(out, v.Table)
		}
	}
	return out, nil
}

// CreateVRF creates the VRF device name bound to table and brings it up.
func CreateVRF(name string, table uint32) (*netlink.Vrf, error) {
	v := &netlink.Vrf{LinkAttrs: netlink.NewLinkAttrs(), Table: table}
	v.Name = name
	if err := netlink.LinkAdd(v); err != nil {
		return nil, fmt.Errorf("create VRF %q (table %d): %w", name, table, err)
	}
	if err := netlink.LinkSetUp(v); err != nil {
		_ = netlink.LinkDel(v)
		return nil, fmt.Errorf("set VRF %q up: %w", name, err)
	}
	return VRF(name)
}

// SetMaster enslaves l to master (a bridge, a VRF).
func SetMaster(l, master netlink.Link) error {
	if err := netlink.LinkSetMaster(l, master); err != nil {
		return fmt.Errorf("set %q as master of %q: %w", master.Attrs().Name, l.Attrs().Name, err)
	}
	return nil
}

// SetNoMaster frees l from its master.
func SetNoMaster(l netlink.Link) error {
	if err := netlink.LinkSetNoMaster(l); err != nil {
		return fmt.Errorf("free %q from its master: %w", l.Attrs().Name, err)
	}
	return nil
}

// Enslaved returns the links whose master is master.
func Enslaved(master netlink.Link) ([]netlink.Link, error) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []netlink.Link
	for _, l := range links {
		if l.Attrs().MasterIndex == master.Attrs().Index {
			out = append(out, l)
		}
	}
	return out, nil
}

// Delete removes l; already gone is fine.
func Delete(l netlink.Link) error {
	if err := netlink.LinkDel(l); err != nil {
		if _, gone := errors.AsType[netlink.LinkNotFoundError](err); gone {
			return nil
		}
		return fmt.Errorf("delete %q: %w", l.Attrs().Name, err)
	}
	return nil
}
