package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"slices"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/route"
)

// ADD: inside the pod, find or create the VRF, enslave the interface, then put back what the kernel
// dropped on the way (global IPv6 addresses, unless keep_addr_on_down) and move the interface's
// non-connected main-table routes into the VRF's table, as the reference does. Each step is a fault
// point; a failure undoes the earlier ones. The result is prevResult, unchanged.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	prev, err := conf.ChainedPrevResult(&n.NetConf, "vrf moves an interface another plugin made")
	if err != nil {
		return err
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			a := &adder{n: n, ifName: args.IfName}
			if err := a.Run(
				plugin.Do("vrf", a.ensureVRF),
				plugin.Do("enslave", a.enslave),
				plugin.Do("routes", a.restore),
			); err != nil {
				return err
			}
			return plugin.PrintResult(prev, n.CNIVersion)
		})
	})
}

type adder struct {
	plugin.Add
	n      *NetConf
	ifName string

	vrf      *netlink.Vrf
	l        netlink.Link
	v6Before []netlink.Addr
	routes   []netlink.Route // the interface's main-table routes of universe scope, before enslaving
}

func (a *adder) ensureVRF() error {
	v, err := link.VRF(a.n.VRFName)
	switch {
	case errors.Is(err, link.ErrNotVRF):
		return conf.Invalid("vrfname", "%v; name a VRF or a free name", err)
	case err == nil:
		if a.n.Table != 0 && v.Table != uint32(a.n.Table) {
			return conf.Invalid("table", "VRF %q already exists with table %d, not %d; omit table or give %d", a.n.VRFName, v.Table, a.n.Table, v.Table)
		}
		a.vrf = v
		return nil
	case !errors.Is(err, link.ErrNotFound):
		return err
	}
	table := uint32(a.n.Table)
	if table == 0 {
		used, err := link.VRFTables()
		if err != nil {
			return err
		}
		table = freeTable(used)
	}
	if a.vrf, err = link.CreateVRF(a.n.VRFName, table); err != nil {
		return err
	}
	a.OnFailure("remove VRF "+a.n.VRFName, func() error { return link.Delete(a.vrf) })
	return nil
}

func (a *adder) enslave() error {
	l, err := link.ByName(a.ifName)
	if err != nil {
		return fmt.Errorf("container interface: %w", err)
	}
	a.l = l
	if m := l.Attrs().MasterIndex; m != 0 {
		name := fmt.Sprintf("ifindex %d", m)
		if ml, err := netlink.LinkByIndex(m); err == nil {
			name = ml.Attrs().Name
		}
		return fmt.Errorf("interface %q already has a master (%s); vrf only enslaves a free interface", a.ifName, name)
	}
	if a.v6Before, err = addr.ListGlobalRaw(l, netlink.FAMILY_V6); err != nil {
		return err
	}
	mainRoutes, err := route.ListMainOf(l)
	if err != nil {
		return err
	}
	a.routes = universeScope(mainRoutes)
	if err := link.SetMaster(l, a.vrf); err != nil {
		return err
	}
	a.OnFailure("take "+a.ifName+" out of the VRF", a.unenslave)
	return nil
}

// unenslave undoes enslave: leaving the VRF cycles the interface again, so its IPv6 addresses and
// routes go back to the main table by hand.
func (a *adder) unenslave() error {
	errs := []error{link.SetNoMaster(a.l)}
	errs = append(errs, readdMissing(a.l, a.v6Before))
	for _, r := range a.routes {
		r.Flags = 0
		errs = append(errs, route.AddRaw(r))
	}
	return errors.Join(errs...)
}

// restore puts back the global IPv6 addresses enslaving dropped, waits for each one's local route in
// the VRF's table, then adds the saved routes to that table.
func (a *adder) restore() error {
	if err := readdMissing(a.l, a.v6Before); err != nil {
		return err
	}
	for _, v6 := range a.v6Before {
		if err := waitLocalRoute(a.l, int(a.vrf.Table), v6.IP); err != nil {
			return err
		}
	}
	for _, r := range a.routes {
		r.Table = int(a.vrf.Table)
		r.Flags = 0
		if err := route.ReplaceRaw(r); err != nil {
			return err
		}
	}
	return nil
}

// universeScope keeps the routes that are neither local nor connected: those the kernel drops when the
// interface changes master and does not make again.
func universeScope(rs []netlink.Route) []netlink.Route {
	var out []netlink.Route
	for _, r := range rs {
		if r.Scope == netlink.SCOPE_UNIVERSE {
			out = append(out, r)
		}
	}
	return out
}

// readdMissing adds each of want that l no longer holds.
func readdMissing(l netlink.Link, want []netlink.Addr) error {
	have, err := addr.ListGlobalRaw(l, netlink.FAMILY_V6)
	if err != nil {
		return err
	}
	for _, w := range want {
		if slices.ContainsFunc(have, func(h netlink.Addr) bool { return h.Equal(w) }) {
			continue
		}
		if err := addr.AddRaw(l, w); err != nil {
			return err
		}
	}
	return nil
}

// localRouteWait bounds the wait for the kernel to install a re-added address's local route (the
// reference waits about 2.5 s).
const localRouteWait = 3 * time.Second

// waitLocalRoute waits until table holds the host route to ip through l.
func waitLocalRoute(l netlink.Link, table int, ip net.IP) error {
	deadline := time.Now().Add(localRouteWait)
	delay := 10 * time.Millisecond
	for {
		rs, err := route.ListTableOf(l, table)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Dst != nil && r.Dst.IP.Equal(ip) {
				if ones, bits := r.Dst.Mask.Size(); ones == bits {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the local route of %s on %q did not appear in table %d within %v", ip, l.Attrs().Name, table, localRouteWait)
		}
		time.Sleep(delay)
		delay *= 2
	}
}

// DEL takes the interface out of the VRF (only if it is in this one) and removes the VRF once no
// interface is left in it. No namespace, no VRF or no interface: nothing to do.
func cmdDel(n *NetConf, args *plugin.Args) error {
	err := netns.With(args.Netns, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			v, err := link.VRF(n.VRFName)
			if errors.Is(err, link.ErrNotFound) {
				return nil
			}
			if errors.Is(err, link.ErrNotVRF) {
				log.Printf("DEL: %v: nothing of vrf's to remove", err)
				return nil
			}
			if err != nil {
				return err
			}
			l, err := link.ByName(args.IfName)
			if err != nil && !errors.Is(err, link.ErrNotFound) {
				return err
			}
			if l != nil && l.Attrs().MasterIndex == v.Index {
				if err := link.SetNoMaster(l); err != nil {
					return err
				}
			}
			left, err := link.Enslaved(v)
			if err != nil {
				return err
			}
			if len(left) == 0 {
				return link.Delete(v)
			}
			return nil
		})
	})
	if netns.Gone(err) {
		return nil
	}
	return err
}

// CHECK verifies that the VRF exists (with the configured table, if any) and holds the interface.
func cmdCheck(n *NetConf, args *plugin.Args) error {
	if _, err := conf.CheckPrevResult(&n.NetConf); err != nil {
		return err
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			v, err := link.VRF(n.VRFName)
			if err != nil {
				return fmt.Errorf("VRF: %w", err)
			}
			if n.Table != 0 && v.Table != uint32(n.Table) {
				return fmt.Errorf("VRF %q has table %d, the configuration sets %d", n.VRFName, v.Table, n.Table)
			}
			l, err := link.ByName(args.IfName)
			if err != nil {
				return fmt.Errorf("container interface: %w", err)
			}
			if l.Attrs().MasterIndex != v.Index {
				return fmt.Errorf("interface %q is not in VRF %q", args.IfName, n.VRFName)
			}
			return nil
		})
	})
}

// GC does nothing: the VRF lives in the pod's namespace and goes with it.
func cmdGC(*NetConf, *plugin.Args) error { return nil }

// STATUS reports whether this kernel can make VRF devices at all.
func cmdStatus(*NetConf, *plugin.Args) error {
	if !link.KernelHas("vrf") {
		return conf.NotAvailable("this kernel has no vrf module (CONFIG_NET_VRF): VRF devices cannot be created")
	}
	return nil
}
