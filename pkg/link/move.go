package link

import (
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// ErrNoOriginalName is returned (wrapped) by MoveOut for a link whose alias does not hold the name it
// had before MoveInto: it was not moved in by host-device, and where it belongs is unknown.
var ErrNoOriginalName = errors.New("has no alias holding its original name")

// MoveInto moves l, a link of the calling namespace, into pod under the name ifName and brings it up.
// Its original name is kept in its alias (IFLA_IFALIAS), where MoveOut (and the reference host-device
// plugin's DEL) find it. The rename happens in a private temporary namespace, so neither the caller's
// namespace (udev, NetworkManager) nor the pod ever sees the link under a passing name. On failure the
// link is back in the calling namespace under its own name, up if it was up.
func MoveInto(l netlink.Link, pod ns.NetNS, ifName string) (netlink.Link, error) {
	orig := l.Attrs().Name
	wasUp := l.Attrs().Flags&net.FlagUp != 0
	tmp, err := ns.TempNetNS()
	if err != nil {
		return nil, fmt.Errorf("create a temporary namespace: %w", err)
	}
	defer tmp.Close()
	if err := netlink.LinkSetNsFd(l, int(tmp.Fd())); err != nil {
		return nil, fmt.Errorf("move %q out of the host's namespace: %w", orig, err)
	}
	err = tmp.Do(func(host ns.NetNS) error {
		tl, err := ByName(orig)
		if err != nil {
			return err
		}
		ok := false
		defer func() {
			if !ok {
				_ = netlink.LinkSetAlias(tl, "")
				_ = netlink.LinkSetName(tl, orig)
				_ = netlink.LinkSetNsFd(tl, int(host.Fd()))
			}
		}()
		if err := netlink.LinkSetName(tl, ifName); err != nil {
			return fmt.Errorf("rename %q to %q: %w", orig, ifName, err)
		}
		if err := netlink.LinkSetAlias(tl, orig); err != nil {
			return fmt.Errorf("save the name %q in the alias of %q: %w", orig, ifName, err)
		}
		if err := netlink.LinkSetNsFd(tl, int(pod.Fd())); err != nil {
			return fmt.Errorf("move %q (host %q) into %s: %w", ifName, orig, pod.Path(), err)
		}
		ok = true
		return nil
	})
	if err != nil {
		if wasUp {
			if hl, lerr := ByName(orig); lerr == nil {
				_ = netlink.LinkSetUp(hl)
			}
		}
		return nil, err
	}
	var moved netlink.Link
	err = pod.Do(func(ns.NetNS) error {
		var err error
		if moved, err = ByName(ifName); err != nil {
			return err
		}
		return SetUp(moved)
	})
	if err != nil {
		if _, oerr := MoveOut(pod, ifName); oerr != nil {
			err = errors.Join(err, fmt.Errorf("move %q back: %w", orig, oerr))
		}
		return nil, err
	}
	return moved, nil
}

// MoveOut moves ifName from pod back into the calling namespace under the name its alias holds
// (MoveInto's, or the reference host-device plugin's), clears the alias and leaves it down (its state
// before the pod is not known). It returns that name. A pod without ifName is an error wrapping
// ErrNotFound; a link without the alias one wrapping ErrNoOriginalName, and it stays in the pod. On
// any other failure the link is back in the pod.
func MoveOut(pod ns.NetNS, ifName string) (string, error) {
	tmp, err := ns.TempNetNS()
	if err != nil {
		return "", fmt.Errorf("create a temporary namespace: %w", err)
	}
	defer tmp.Close()
	var orig string
	err = pod.Do(func(ns.NetNS) error {
		pl, err := ByName(ifName)
		if err != nil {
			return err
		}
		if orig = pl.Attrs().Alias; orig == "" {
			return fmt.Errorf("%q in %s %w", ifName, pod.Path(), ErrNoOriginalName)
		}
		if err := netlink.LinkSetNsFd(pl, int(tmp.Fd())); err != nil {
			return fmt.Errorf("move %q out of %s: %w", ifName, pod.Path(), err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	err = tmp.Do(func(host ns.NetNS) error {
		tl, err := ByName(ifName)
		if err != nil {
			return err
		}
		ok := false
		defer func() {
			if !ok {
				_ = netlink.LinkSetName(tl, ifName)
				_ = netlink.LinkSetAlias(tl, orig)
				_ = netlink.LinkSetNsFd(tl, int(pod.Fd()))
			}
		}()
		if err := netlink.LinkSetName(tl, orig); err != nil {
			return fmt.Errorf("rename %q back to %q: %w", ifName, orig, err)
		}
		if err := netlink.LinkSetAlias(tl, ""); err != nil {
			return fmt.Errorf("clear the alias of %q: %w", orig, err)
		}
		if err := netlink.LinkSetNsFd(tl, int(host.Fd())); err != nil {
			return fmt.Errorf("move %q back to the host's namespace: %w", orig, err)
		}
		ok = true
		return nil
	})
	if err != nil {
		return "", err
	}
	return orig, nil
}
