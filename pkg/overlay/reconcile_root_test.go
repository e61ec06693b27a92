package overlay

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/neigh"
	"github.com/netloom/netloom/pkg/route"
	"github.com/netloom/netloom/test/harness"
)

// reconcileNode is a fresh namespace with a veth pair whose end ul0 is the underlay, carrying
// 10.77.1.11/24, and the name of the tunnel device a test may create there.
type reconcileNode struct {
	ns     harness.NetNS
	device string
}

func newReconcileNode(t *testing.T) reconcileNode {
	t.Helper()
	harness.RequireRoot(t)
	n := reconcileNode{ns: harness.NewNetNS(t, "ovrec"), device: harness.Unique("nlvxt")}
	n.ns.Run(t, "ip", "link", "set", "lo", "up")
	n.ns.Run(t, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
	n.ns.Run(t, "ip", "addr", "add", "10.77.1.11/24", "dev", "ul0")
	n.ns.Run(t, "ip", "link", "set", "ul0", "up")
	n.ns.Run(t, "ip", "link", "set", "ul1", "up")
	// Sync takes a lock file named after the device in the host's /run; the device name is unique, so
	// the file is this test's to remove.
	lockFile := filepath.Join(lockDir, n.device+".lock")
	if _, err := os.Lstat(lockFile); err == nil {
		t.Fatalf("lock file %s already exists", lockFile)
	}
	t.Cleanup(func() {
		if err := os.Remove(lockFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Error(err)
		}
	})
	return n
}

// network parses and resolves a vxlan-overlay configuration with peers inside the namespace.
func (n reconcileNode) network(t *testing.T, peers string) *Network {
	t.Helper()
	c, err := Parse(VXLAN, []byte(cfg("vxlan-overlay", "10.244.1.0/24",
		`,"device":"`+n.device+`","underlayInterface":"ul0","vni":77,"clusterCIDR":"10.244.0.0/16","peers":`+peers)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var nw *Network
	n.do(t, func() (err error) {
		nw, err = c.Resolve()
		return err
	})
	return nw
}

func (n reconcileNode) do(t *testing.T, f func() error) {
	t.Helper()
	if err := n.ns.Do(f); err != nil {
		t.Fatal(err)
	}
}

func (n reconcileNode) sync(t *testing.T, nw *Network) []string {
	t.Helper()
	var changes []string
	n.do(t, func() (err error) {
		changes, err = nw.Sync()
		return err
	})
	t.Logf("Sync: %q", changes)
	return changes
}

func (n reconcileNode) diff(t *testing.T, nw *Network) []string {
	t.Helper()
	var diffs []string
	n.do(t, func() (err error) {
		diffs, err = nw.Diff()
		return err
	})
	return diffs
}

// peerState is what the kernel holds for the overlay, rendered and sorted: proto 78 routes (with the
// device they go through), the tunnel's permanent neighbours, its FDB and its global addresses.
type peerState struct {
	routes, neighs, fdb, addrs []string
}

func (n reconcileNode) state(t *testing.T) peerState {
	t.Helper()
	var s peerState
	n.do(t, func() error {
		tun, err := link.ByName(n.device)
		if err != nil {
			return err
		}
		rs, err := route.ListByProtocol(route.ProtoOverlay)
		if err != nil {
			return err
		}
		for _, r := range rs {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				return err
			}
			s.routes = append(s.routes, fmt.Sprintf("%s dev %s", r.Route, l.Attrs().Name))
		}
		ns, err := neigh.Permanent(tun)
		if err != nil {
			return err
		}
		for _, e := range ns {
			s.neighs = append(s.neighs, e.String())
		}
		fs, err := neigh.ListFDB(tun)
		if err != nil {
			return err
		}
		for _, f := range fs {
			s.fdb = append(s.fdb, f.String())
		}
		as, err := addr.List(tun, netlink.FAMILY_ALL)
		for _, a := range as {
			s.addrs = append(s.addrs, a.String())
		}
		return err
	})
	for _, l := range [][]string{s.routes, s.neighs, s.fdb, s.addrs} {
		slices.Sort(l)
	}
	return s
}

func (s peerState) check(t *testing.T, want peerState) {
	t.Helper()
	for _, c := range []struct {
		what      string
		got, want []string
	}{{"routes", s.routes, want.routes}, {"neighbours", s.neighs, want.neighs}, {"fdb", s.fdb, want.fdb}, {"addresses", s.addrs, want.addrs}} {
		slices.Sort(c.want)
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.what, c.got, c.want)
		}
	}
}

func TestReconcileRoot(t *testing.T) {
	n := newReconcileNode(t)
	dev := n.device
	const (
		peerA = `{"nodeIP":"10.77.1.12","podCIDR":"10.244.2.0/24"}`
		peerB = `{"nodeIP":"10.77.2.13","podCIDR":"10.244.3.0/24","vtepMAC":"0a:00:00:00:00:13"}`
		// peerB after it changed its VTEP MAC.
		peerB2 = `{"nodeIP":"10.77.2.13","podCIDR":"10.244.3.0/24","vtepMAC":"0a:00:00:00:00:14"}`
	)

	// First sync: the device and every peer's route, neighbour and FDB entry.
	nw := n.network(t, "["+peerA+","+peerB+"]")
	if nw.NodeIP.String() != "10.77.1.11" || nw.Subnet.String() != "10.77.1.0/24" || nw.MTU != 1450 || nw.VTEPMAC.String() != "0e:4c:0a:4d:01:0b" {
		t.Fatalf("Resolve: node %s subnet %s MTU %d VTEP MAC %s", nw.NodeIP, nw.Subnet, nw.MTU, nw.VTEPMAC)
	}
	if changes := n.sync(t, nw); len(changes) == 0 {
		t.Fatal("first Sync changed nothing")
	}
	full := peerState{
		routes: []string{
			"10.244.2.0/24 via 10.77.1.12 onlink proto 78 dev " + dev,
			"10.244.3.0/24 via 10.77.2.13 onlink proto 78 dev " + dev,
		},
		neighs: []string{"10.77.1.12 lladdr 0e:4c:0a:4d:01:0c", "10.77.2.13 lladdr 0a:00:00:00:00:13"},
		fdb:    []string{"0e:4c:0a:4d:01:0c dst 10.77.1.12", "0a:00:00:00:00:13 dst 10.77.2.13"},
		addrs:  []string{"10.244.1.0/32"},
	}
	n.state(t).check(t, full)
	var vni int
	n.do(t, func() error {
		l, err := link.ByName(dev)
		if err != nil {
			return err
		}
		v, ok := l.(*netlink.Vxlan)
		if !ok {
			return fmt.Errorf("%s is a %T", dev, l)
		}
		vni = v.VxlanId
		if l.Attrs().MTU != 1450 || l.Attrs().HardwareAddr.String() != "0e:4c:0a:4d:01:0b" || v.Learning || v.Port != 4789 || v.VtepDevIndex != nw.Underlay.Attrs().Index {
			t.Errorf("device: MTU %d MAC %s learning %v port %d underlay %d", l.Attrs().MTU, l.Attrs().HardwareAddr, v.Learning, v.Port, v.VtepDevIndex)
		}
		return nil
	})
	if vni != 77 {
		t.Errorf("VNI %d, want 77", vni)
	}
	if d := n.diff(t, nw); len(d) != 0 {
		t.Errorf("Diff after Sync: %q", d)
	}
	if c := n.sync(t, nw); len(c) != 0 {
		t.Errorf("second Sync changed %q", c)
	}

	// Others' state: a static route on the underlay and one on the tunnel, a proto 78 route on the
	// underlay outside the cluster CIDR, and a permanent neighbour on the underlay.
	n.ns.Run(t, "ip", "route", "add", "10.99.0.0/24", "via", "10.77.1.1", "dev", "ul0", "proto", "static")
	n.ns.Run(t, "ip", "route", "add", "10.244.50.0/24", "dev", dev, "proto", "static")
	n.ns.Run(t, "ip", "route", "add", "10.98.0.0/24", "via", "10.77.1.1", "dev", "ul0", "proto", "78")
	n.ns.Run(t, "ip", "neigh", "add", "10.77.1.50", "lladdr", "02:00:00:00:00:50", "dev", "ul0", "nud", "permanent")
	foreign := func() {
		t.Helper()
		routes := n.ns.Run(t, "ip", "route", "show")
		for _, r := range []string{"10.99.0.0/24 via 10.77.1.1 dev ul0 proto static", "10.244.50.0/24 dev " + dev + " proto static", "10.98.0.0/24 via 10.77.1.1 dev ul0 proto 78"} {
			if !strings.Contains(routes, r) {
				t.Errorf("route %q is gone:\n%s", r, routes)
			}
		}
		if nb := n.ns.Run(t, "ip", "neigh", "show", "dev", "ul0"); !strings.Contains(nb, "10.77.1.50 lladdr 02:00:00:00:00:50 PERMANENT") {
			t.Errorf("foreign neighbour is gone:\n%s", nb)
		}
	}
	if d := n.diff(t, nw); len(d) != 0 {
		t.Errorf("Diff names others' state: %q", d)
	}
	if c := n.sync(t, nw); len(c) != 0 {
		t.Errorf("Sync with others' state present changed %q", c)
	}
	foreign()
	withForeignRoute := full
	withForeignRoute.routes = append(slices.Clone(full.routes), "10.98.0.0/24 via 10.77.1.1 proto 78 dev ul0")
	n.state(t).check(t, withForeignRoute)

	// Peer A leaves, peer B changes its VTEP MAC: exactly their entries change.
	nw = n.network(t, "["+peerB2+"]")
	if d := n.diff(t, nw); len(d) != 6 {
		t.Errorf("Diff after the peer change = %q, want 6 differences", d)
	}
	changes := n.sync(t, nw)
	wantChanges := []string{
		"remove route 10.244.2.0/24 via 10.77.1.12 onlink proto 78",
		"remove neighbour 10.77.1.12",
		"remove fdb 0e:4c:0a:4d:01:0c dst 10.77.1.12",
		"remove fdb 0a:00:00:00:00:13 dst 10.77.2.13",
		"neighbour 10.77.2.13 lladdr 0a:00:00:00:00:14",
		"fdb 0a:00:00:00:00:14 dst 10.77.2.13",
	}
	if len(changes) != len(wantChanges) {
		t.Errorf("Sync after the peer change = %q, want %d changes like %q", changes, len(wantChanges), wantChanges)
	}
	for _, w := range wantChanges {
		if !slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, w) }) {
			t.Errorf("Sync after the peer change = %q, missing %q", changes, w)
		}
	}
	after := peerState{
		routes: []string{"10.244.3.0/24 via 10.77.2.13 onlink proto 78 dev " + dev, "10.98.0.0/24 via 10.77.1.1 proto 78 dev ul0"},
		neighs: []string{"10.77.2.13 lladdr 0a:00:00:00:00:14"},
		fdb:    []string{"0a:00:00:00:00:14 dst 10.77.2.13"},
		addrs:  []string{"10.244.1.0/32"},
	}
	n.state(t).check(t, after)
	foreign()
	if d := n.diff(t, nw); len(d) != 0 {
		t.Errorf("Diff after Sync: %q", d)
	}

	// A route deleted by hand: Diff names it, Sync puts it back.
	n.ns.Run(t, "ip", "route", "del", "10.244.3.0/24", "dev", dev)
	if d := n.diff(t, nw); len(d) != 1 || !strings.HasPrefix(d[0], "route 10.244.3.0/24 via 10.77.2.13") {
		t.Errorf("Diff after deleting a route = %q, want that route", d)
	}
	if c := n.sync(t, nw); len(c) != 1 {
		t.Errorf("Sync after deleting a route = %q, want one change", c)
	}
	n.state(t).check(t, after)

	// The device's MTU and MAC changed by hand (which flushes its neighbours; the neighbour is put back
	// by hand too): Diff names both. Sync fixes them in place, which flushes the neighbour again, and
	// puts it back.
	n.ns.Run(t, "ip", "link", "set", dev, "mtu", "1400", "address", "02:00:00:00:00:77")
	n.ns.Run(t, "ip", "neigh", "replace", "10.77.2.13", "lladdr", "0a:00:00:00:00:14", "dev", dev, "nud", "permanent")
	wantDiff := []string{"device " + dev + ": MTU 1400, want 1450", "device " + dev + ": MAC 02:00:00:00:00:77, want 0e:4c:0a:4d:01:0b"}
	if d := n.diff(t, nw); !slices.Equal(d, wantDiff) {
		t.Errorf("Diff after changing MTU and MAC = %q, want %q", d, wantDiff)
	}
	n.sync(t, nw)
	if d := n.diff(t, nw); len(d) != 0 {
		t.Errorf("Diff after fixing MTU and MAC: %q", d)
	}
	n.state(t).check(t, after)

	// The device set down, which takes its routes: Sync brings it up, then puts the routes back.
	n.ns.Run(t, "ip", "link", "set", dev, "down")
	if d := n.diff(t, nw); len(d) == 0 || d[0] != "device "+dev+" is down" {
		t.Errorf("Diff with the device down = %q, want it named down first", d)
	}
	n.sync(t, nw)
	if d := n.diff(t, nw); len(d) != 0 {
		t.Errorf("Diff after bringing the device up: %q", d)
	}
	n.state(t).check(t, after)

	// A device with the wrong VNI is recreated, and its peer state reprogrammed.
	n.ns.Run(t, "ip", "link", "del", dev)
	n.ns.Run(t, "ip", "link", "add", dev, "type", "vxlan", "id", "99", "local", "10.77.1.11", "dev", "ul0", "dstport", "4789", "nolearning")
	if d := n.diff(t, nw); len(d) != 1 || !strings.Contains(d[0], "its VNI is 99, not 77") {
		t.Errorf("Diff with the wrong VNI = %q", d)
	}
	changes = n.sync(t, nw)
	if len(changes) == 0 || !strings.HasPrefix(changes[0], "recreate device "+dev+": its VNI is 99, not 77") {
		t.Errorf("Sync with the wrong VNI = %q, want a recreate first", changes)
	}
	n.state(t).check(t, peerState{
		routes: []string{"10.244.3.0/24 via 10.77.2.13 onlink proto 78 dev " + dev, "10.98.0.0/24 via 10.77.1.1 proto 78 dev ul0"},
		neighs: after.neighs, fdb: after.fdb, addrs: after.addrs,
	})
	n.do(t, func() error {
		l, err := link.ByName(dev)
		if err != nil {
			return err
		}
		if v, ok := l.(*netlink.Vxlan); !ok || v.VxlanId != 77 || l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("recreated device: %T %+v", l, l)
		}
		return nil
	})
	if d := n.diff(t, nw); len(d) != 0 {
		t.Errorf("Diff after recreating: %q", d)
	}
	if c := n.sync(t, nw); len(c) != 0 {
		t.Errorf("Sync after recreating changed %q", c)
	}
}
