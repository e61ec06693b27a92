package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/addr"
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
	tun, recreated, err := link.EnsureTunnel(nw.Tunnel())
	if err != nil {
		return nil, err
	}
	var changes []string
	if recreated != "" {
		changes = append(changes, fmt.Sprintf("recreate device %s: %s", nw.Conf.Device, recreated))
	}
	more, err := nw.reconcile(tun, true)
	return append(changes, more...), err
}

// Diff reports how the kernel differs from nw without changing anything: what CHECK fails on.
func (nw *Network) Diff() ([]string, error) {
	tun, err := link.ByName(nw.Conf.Device)
	if errors.Is(err, link.ErrNotFound) {
		return []string{fmt.Sprintf("device %s does not exist", nw.Conf.Device)}, nil
	} else if err != nil {
		return nil, err
	}
	if why := link.TunnelMismatch(tun, nw.Tunnel()); why != "" {
		return []string{fmt.Sprintf("device %s: %s", nw.Conf.Device, why)}, nil
	}
	var diffs []string
	if tun.Attrs().MTU != nw.MTU {
		diffs = append(diffs, fmt.Sprintf("device %s: MTU %d, want %d", nw.Conf.Device, tun.Attrs().MTU, nw.MTU))
	}
	if tun.Attrs().OperState == netlink.OperDown {
		diffs = append(diffs, fmt.Sprintf("device %s is down", nw.Conf.Device))
	}
	more, err := nw.reconcile(tun, false)
	return append(diffs, more...), err
}

// change is one step of a reconcile: what it does, and doing it.
type change struct {
	what string
	do   func() error
}

// reconcile compares the kernel with nw.Plan() and, when apply is set, fixes every difference: stale
// routes go first (no packet follows a route to a peer that left), then neighbour and FDB entries, then
// the new routes, so a route never points at an entry not yet there.
func (nw *Network) reconcile(tun netlink.Link, apply bool) ([]string, error) {
	want := nw.Plan()
	var removeRoutes, entries, addRoutes []change

	// Routes: ours are those of our protocol through the tunnel, and the direct ones through the underlay
	// to destinations inside the cluster CIDR (or any, when there is none).
	have, err := route.ListByProtocol(route.ProtoOverlay)
	if err != nil {
		return nil, err
	}
	cluster := nw.Conf.clusterCIDR
	byDst := map[netip.Prefix]route.Installed{}
	for _, h := range have {
		owned := h.LinkIndex == tun.Attrs().Index ||
			(h.LinkIndex == nw.Underlay.Attrs().Index && (!cluster.IsValid() || cluster.Contains(h.Dst.Addr())))
		if owned {
			byDst[h.Dst] = h
		}
	}
	for _, w := range want.Routes {
		via := tun
		if w.Direct {
			via = nw.Underlay
		}
		h, ok := byDst[w.Dst]
		delete(byDst, w.Dst)
		if ok && h.LinkIndex == via.Attrs().Index && h.GW == w.GW && h.OnLink == w.OnLink {
			continue
		}
		addRoutes = append(addRoutes, change{fmt.Sprintf("route %s dev %s", w.Route, via.Attrs().Name), func() error { return route.Replace(via, w.Route) }})
	}
	for _, h := range byDst {
		removeRoutes = append(removeRoutes, change{fmt.Sprintf("remove route %s (ifindex %d)", h.Route, h.LinkIndex), func() error { return route.DelInstalled(h) }})
	}

	// Neighbour and FDB entries: every permanent one on the tunnel device is ours.
	haveN, err := neigh.Permanent(tun)
	if err != nil {
		return nil, err
	}
	nByIP := map[netip.Addr]string{}
	for _, e := range haveN {
		nByIP[e.IP] = e.MAC.String()
	}
	for _, w := range want.Neighs {
		mac, ok := nByIP[w.IP]
		delete(nByIP, w.IP)
		if !ok || mac != w.MAC.String() {
			entries = append(entries, change{"neighbour " + w.String(), func() error { return neigh.Replace(tun, w) }})
		}
	}
	for ip := range nByIP {
		entries = append(entries, change{"remove neighbour " + ip.String(), func() error { return neigh.Remove(tun, ip) }})
	}
	if nw.Conf.kind.Tunnel == link.KindVXLAN {
		haveF, err := neigh.ListFDB(tun)
		if err != nil {
			return nil, err
		}
		fByMAC := map[string]neigh.FDB{}
		for _, f := range haveF {
			fByMAC[f.MAC.String()] = f
		}
		for _, w := range want.FDB {
			h, ok := fByMAC[w.MAC.String()]
			delete(fByMAC, w.MAC.String())
			if !ok || h.Dst != w.Dst {
				entries = append(entries, change{"fdb " + w.String(), func() error { return neigh.ReplaceFDB(tun, w) }})
			}
		}
		for _, f := range fByMAC {
			entries = append(entries, change{"remove fdb " + f.String(), func() error { return neigh.RemoveFDB(tun, f) }})
		}
	}

	// The tunnel's own addresses.
	haveA, err := addr.List(tun, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	aSet := map[netip.Prefix]bool{}
	for _, a := range haveA {
		aSet[a] = true
	}
	for _, w := range want.TunnelAddrs {
		if !aSet[w] {
			entries = append(entries, change{fmt.Sprintf("address %s dev %s", w, tun.Attrs().Name), func() error { return addr.AddNoDAD(tun, w) }})
		}
		delete(aSet, w)
	}
	for a := range aSet {
		entries = append(entries, change{fmt.Sprintf("remove address %s dev %s", a, tun.Attrs().Name), func() error { return addr.Del(tun, a) }})
	}

	var done []string
	for _, group := range [][]change{removeRoutes, entries, addRoutes} {
		for _, c := range group {
			if apply {
				if err := c.do(); err != nil {
					return done, err
				}
			}
			done = append(done, c.what)
		}
	}
	return done, nil
}

// lock takes the exclusive lock of device's reconcile; the returned function releases it.
func lock(device string) (func(), error) {
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(lockDir, device+".lock"), os.O_RDONLY|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock for device %q: %w", device, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock for device %q: %w", device, err)
	}
	return func() { f.Close() }, nil
}
