package overlay

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/filelock"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/neigh"
	"github.com/netloom/netloom/pkg/route"
)

// lockDir holds one lock file per tunnel device, so concurrent ADDs (and the sync command) reconcile one
// device one at a time.
const lockDir = "/run/netloom/overlay"

// Tunnel returns the device spec of nw.
func (nw *Network) Tunnel() link.TunnelSpec {
	n := nw.Conf
	return link.TunnelSpec{
		Kind: n.kind.Tunnel, Name: n.Device, Local: nw.NodeIP, Underlay: nw.Underlay.Attrs().Index,
		MTU: nw.MTU, VNI: n.vni, Port: n.Port, MAC: nw.VTEPMAC,
	}
}

// Sync makes the tunnel device and the peer state match nw: missing entries added, changed ones
// replaced, stale ones removed. It returns what it changed, one line per change.
func (nw *Network) Sync() ([]string, error) {
	unlock, err := lock(nw.Conf.Device)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t := nw.target()
	st, err := nw.readState()
	if err != nil {
		return nil, err
	}
	c := diff(t, st)
	var done []string
	if len(c.device.diffs) > 0 {
		if done, err = nw.ensureDevice(); err != nil {
			return nil, err
		}
		// Fixing the device can take entries with it (a new MAC flushes its neighbours, a new device
		// has none): compare again.
		if st, err = nw.readState(); err != nil {
			return done, err
		}
		c = diff(t, st)
	}
	more, err := apply(c.inOrder(), st.device, nw.Underlay)
	return append(done, more...), err
}

// Diff reports how the kernel differs from nw without changing anything: what CHECK fails on.
func (nw *Network) Diff() ([]string, error) {
	st, err := nw.readState()
	if err != nil {
		return nil, err
	}
	return diff(nw.target(), st).lines(), nil
}

// DiffSplit is Diff sorted by consequence: missing are the differences that cost pods connectivity,
// tidy those that only leave something stale or smaller than it could be (see changes.split).
func (nw *Network) DiffSplit() (missing, tidy []string, err error) {
	st, err := nw.readState()
	if err != nil {
		return nil, nil, err
	}
	missing, tidy = diff(nw.target(), st).split()
	return missing, tidy, nil
}

// ensureDevice makes, fixes or replaces the tunnel device. Of what it does it names only a replacement,
// as Sync always has: a missing device made, or its MTU, MAC or down state fixed in place, go unnamed.
func (nw *Network) ensureDevice() ([]string, error) {
	_, recreated, err := link.EnsureTunnel(nw.Tunnel())
	if err != nil || recreated == "" {
		return nil, err
	}
	return []string{fmt.Sprintf("recreate device %s: %s", nw.Conf.Device, recreated)}, nil
}

// apply makes each of changes, in order, on the tunnel device tun and the underlay. It returns what it
// changed, one line per change, up to the first that failed.
func apply(changes []entryChange, tun, underlay netlink.Link) ([]string, error) {
	var done []string
	for _, e := range changes {
		if err := e.apply(tun, underlay); err != nil {
			return done, err
		}
		done = append(done, e.String())
	}
	return done, nil
}

func (r routeAdd) apply(tun, underlay netlink.Link) error {
	if r.route.Direct {
		return route.Replace(underlay, r.route.Route)
	}
	return route.Replace(tun, r.route.Route)
}

func (r routeDel) apply(netlink.Link, netlink.Link) error { return route.DelInstalled(r.route) }

func (n neighChange) apply(tun, _ netlink.Link) error {
	if n.remove {
		return neigh.Remove(tun, n.entry.IP)
	}
	return neigh.Replace(tun, n.entry)
}

func (f fdbChange) apply(tun, _ netlink.Link) error {
	if f.remove {
		return neigh.RemoveFDB(tun, f.entry)
	}
	return neigh.ReplaceFDB(tun, f.entry)
}

func (a addrChange) apply(tun, _ netlink.Link) error {
	if a.remove {
		return addr.Del(tun, a.prefix)
	}
	return addr.AddNoDAD(tun, a.prefix)
}

// lock takes the exclusive lock of device's reconcile; the returned function releases it.
func lock(device string) (func(), error) {
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	unlock, err := filelock.Create(filepath.Join(lockDir, device+".lock"), 0)
	if err != nil {
		return nil, fmt.Errorf("lock for device %q: %w", device, err)
	}
	return unlock, nil
}
