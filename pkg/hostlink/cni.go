package hostlink

import (
	"errors"
	"fmt"
	"syscall"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
)

// This file turns the kernel's answers into the CNI errors every stacked-link plugin returns, so a
// master, MTU or mode problem reads the same from macvlan and ipvlan.

// where names the namespace the master is looked up in, for messages.
func (m Master) where() string {
	if m.InPod {
		return "the container's network namespace (linkInContainer)"
	}
	return "the host's network namespace"
}

// Find is Lookup for ADD and CHECK: a master that is not there is the configuration's fault, so it
// comes back as a code-7 error naming "master" and saying what would be valid.
func (m Master) Find() (netlink.Link, error) {
	l, err := m.Lookup()
	switch {
	case err == nil:
		return l, nil
	case errors.Is(err, link.ErrNotFound):
		return nil, conf.Invalid("master", "interface %q does not exist in %s; name an existing interface, or omit \"master\" to use the default route's", m.Name, m.where())
	case errors.Is(err, ErrNoDefaultRoute):
		return nil, conf.Invalid("master", "not set, and %s has no default route to take it from; name the master interface", m.where())
	}
	return nil, fmt.Errorf("master: %w", err)
}

// Status is what STATUS reports about the master: code 50 while it is missing or down.
func (m Master) Status() error {
	if err := m.Ready(); err != nil {
		return conf.NotAvailable("master: %v; ADDs fail until it exists and is up", err)
	}
	return nil
}

// MTUFor is ResolveMTU against a master link, as a code-7 error naming "mtu" and the master's MTU.
func MTUFor(requested int, master netlink.Link) (int, error) {
	a := master.Attrs()
	mtu, err := ResolveMTU(requested, a.MTU)
	if err != nil {
		return 0, conf.Invalid("mtu", "%d is above the MTU of master %q (%d); use at most %d, or omit it for the master's",
			requested, a.Name, a.MTU, a.MTU)
	}
	return mtu, nil
}

// CreateError explains the kernel's refusals of a stacked link that a configuration can cause; kind
// is the link type ("macvlan") and mode the configured mode's name. Other errors are wrapped as they
// are.
func CreateError(kind, mode string, master netlink.Link, err error) error {
	name := master.Attrs().Name
	switch {
	case errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EPROTONOSUPPORT):
		return conf.Invalid("mode", "%s mode %q on master %q: this kernel does not support it (or %s at all): %v", kind, mode, name, kind, err)
	case errors.Is(err, syscall.EINVAL) && !CanBeMaster(master):
		return conf.Invalid("master", "%q is a %s, which cannot carry %s links: %v", name, master.Type(), kind, err)
	case errors.Is(err, syscall.EBUSY):
		return conf.Invalid("master", "%q cannot take a %s: it already carries links of another kind (macvlan, ipvlan) or is a bridge or bond port: %v", name, kind, err)
	}
	return fmt.Errorf("%s on master %q: %w", kind, name, err)
}

// CanBeMaster reports whether the kernel accepts l as the master of a stacked link: an Ethernet
// device (not the loopback, not a tunnel).
func CanBeMaster(l netlink.Link) bool {
	return l.Attrs().EncapType == "ether"
}

// RemoveAt is DEL's link step: it removes ifName from the namespace at netnsPath and succeeds when
// there is no namespace (empty path, or gone, which took the link along) or no such link.
func RemoveAt(netnsPath, ifName string) error {
	if netnsPath == "" {
		return nil
	}
	pod, err := netns.Open(netnsPath)
	switch {
	case err == nil:
	case netns.Gone(err):
		return nil
	default:
		return err
	}
	defer pod.Close()
	if err := Remove(pod, ifName); err != nil {
		return fmt.Errorf("remove %q in %s: %w", ifName, netnsPath, err)
	}
	return nil
}

// ResultInterface returns the index in prev of the interface ifName in sandbox: what CHECK compares the
// kernel with. Its absence is a code-7 error naming "prevResult".
func ResultInterface(prev *current.Result, ifName, sandbox string) (int, error) {
	for i, intf := range prev.Interfaces {
		if intf.Name == ifName && intf.Sandbox == sandbox {
			return i, nil
		}
	}
	return -1, conf.Invalid("prevResult", "has no interface %q in sandbox %s", ifName, sandbox)
}

// CheckStacked is the part of CHECK common to stacked links: l sits on master (nil: not checked,
// when the master is not known) and, when wantMAC is not empty, has that MAC.
func CheckStacked(l, master netlink.Link, wantMAC string) error {
	a := l.Attrs()
	if master != nil && a.ParentIndex != master.Attrs().Index {
		return fmt.Errorf("%q sits on ifindex %d, not on master %q (ifindex %d)", a.Name, a.ParentIndex, master.Attrs().Name, master.Attrs().Index)
	}
	if wantMAC != "" && wantMAC != a.HardwareAddr.String() {
		return fmt.Errorf("%q has MAC %s, the ADD result says %s", a.Name, a.HardwareAddr, wantMAC)
	}
	return nil
}

// CheckAttachment is the kernel part of CHECK for a stacked link: prev's interface ifName in pod exists
// with prev's MAC, addresses and routes, sits on master (nil: not compared), and kind accepts it (its
// link type and mode).
func CheckAttachment(pod ns.NetNS, ifName string, prev *current.Result, master netlink.Link, kind func(netlink.Link) error) error {
	idx, err := ResultInterface(prev, ifName, pod.Path())
	if err != nil {
		return err
	}
	wantMAC := prev.Interfaces[idx].Mac
	inspect := func(l netlink.Link) error {
		if err := kind(l); err != nil {
			return err
		}
		return CheckStacked(l, master, wantMAC)
	}
	if err := Verify(pod, ifName, prev, idx, inspect); err != nil {
		return fmt.Errorf("container %s: %w", pod.Path(), err)
	}
	return nil
}
