package main

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/route"
	"github.com/netloom/netloom/pkg/rule"
)

// ADD: under the namespace's lock (the reference's flock on CNI_NETNS), add for each of the interface's
// addresses a rule sending its traffic to a table; without "table", fill each table with the
// interface's routes (plan) and remove them from main. Each step is a fault point; a failure undoes the
// earlier ones. The result is prevResult, unchanged.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	prev, err := conf.ChainedPrevResult(&n.NetConf, "sbr routes the addresses another plugin (e.g. bridge) gave the interface")
	if err != nil {
		return err
	}
	ips, err := addressesOf(prev, args.IfName)
	if err != nil {
		return err
	}
	return inLockedPod(args.Netns, func() error {
		l, err := link.ByName(args.IfName)
		if err != nil {
			return fmt.Errorf("container interface: %w", err)
		}
		a := &adder{}
		var plans []tablePlan
		var mainRoutes []netlink.Route
		if n.Table != nil {
			plans = fixedPlan(ips, *n.Table)
		} else {
			if mainRoutes, err = route.ListMainOf(l); err != nil {
				return err
			}
			used, err := usedTables()
			if err != nil {
				return err
			}
			plans = plan(ips, mainRoutes, used, l.Attrs().Index)
		}
		if err := a.Run(
			plugin.Do("rules", func() error { return a.rules(plans) }),
			plugin.Do("unmain", func() error { return a.unmain(mainRoutes) }),
		); err != nil {
			return err
		}
		return plugin.PrintResult(prev, n.CNIVersion)
	})
}

type adder struct{ plugin.Add }

// rules adds each plan's rule, then its table's routes.
func (a *adder) rules(plans []tablePlan) error {
	for _, p := range plans {
		if err := rule.AddFrom(p.src, p.table); err != nil {
			return err
		}
		r := rule.From{Src: netip.PrefixFrom(p.src, p.src.BitLen()), Table: p.table}
		a.OnFailure("remove "+r.String(), func() error { return delRule(r) })
		for i, rt := range p.routes {
			add := route.ReplaceRaw
			if i == 0 && rt.Gw != nil && rt.Dst.IP.IsUnspecified() {
				add = route.AddRaw // the default route, as the reference adds it
			}
			if err := add(rt); err != nil {
				return err
			}
			a.OnFailure("remove route "+rt.String(), func() error { return route.DelRaw(rt) })
		}
	}
	return nil
}

// unmain removes the interface's routes from main, now that the tables hold them.
func (a *adder) unmain(routes []netlink.Route) error {
	for _, r := range routes {
		if err := route.DelRaw(r); err != nil {
			return err
		}
		back := r
		back.Flags = 0
		a.OnFailure("put back route "+r.String(), func() error { return route.AddRaw(back) })
	}
	return nil
}

// delRule removes the rule "from src lookup table" whatever priority the kernel gave it.
func delRule(r rule.From) error {
	have, err := rule.ListFrom()
	if err != nil {
		return err
	}
	for _, h := range have {
		if h.Src == r.Src && h.Table == r.Table {
			return rule.DelFrom(h)
		}
	}
	return nil
}

// usedTables is every table a rule looks up or a route sits in.
func usedTables() (map[int]bool, error) {
	used, err := rule.Tables()
	if err != nil {
		return nil, err
	}
	routes, err := route.Tables()
	if err != nil {
		return nil, err
	}
	for t := range routes {
		used[t] = true
	}
	return used, nil
}

// inLockedPod runs f inside the pod's namespace while holding the namespace's lock.
func inLockedPod(path string, f func() error) error {
	return netns.With(path, func(pod ns.NetNS) error {
		unlock, err := netns.Lock(path)
		if err != nil {
			return err
		}
		defer unlock()
		return pod.Do(func(ns.NetNS) error { return f() })
	})
}

// DEL removes the rules whose source is an address of the interface (with "table", only those looking
// up that table), as the reference does; without "table" it also removes the interface's routes from
// the tables those rules looked up. The namespace or the interface being gone leaves nothing to do.
func cmdDel(n *NetConf, args *plugin.Args) error {
	err := inLockedPod(args.Netns, func() error {
		l, err := link.ByName(args.IfName)
		if errors.Is(err, link.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		addrs, err := addr.List(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		rules, err := rule.ListFrom()
		if err != nil {
			return err
		}
		var errs []error
		for _, r := range rules {
			if n.Table != nil && r.Table != *n.Table {
				continue
			}
			if !slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr() == r.Src.Addr() }) {
				continue
			}
			errs = append(errs, rule.DelFrom(r))
			if n.Table == nil {
				errs = append(errs, flushTableOf(l, r.Table))
			}
		}
		return errors.Join(errs...)
	})
	if netns.Gone(err) {
		return nil
	}
	return err
}

// flushTableOf removes l's routes from table.
func flushTableOf(l netlink.Link, table int) error {
	routes, err := route.ListTableOf(l, table)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range routes {
		errs = append(errs, route.DelRaw(r))
	}
	return errors.Join(errs...)
}

// CHECK verifies that each of the interface's addresses has its rule (looking up "table" when set)
// and, without "table", that the rule's table routes through the interface, with a default route via
// the address's gateway when it has one.
func cmdCheck(n *NetConf, args *plugin.Args) error {
	prev, err := conf.CheckPrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	ips, err := addressesOf(prev, args.IfName)
	if err != nil {
		return err
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			l, err := link.ByName(args.IfName)
			if err != nil {
				return fmt.Errorf("container interface: %w", err)
			}
			rules, err := rule.ListFrom()
			if err != nil {
				return err
			}
			for _, ip := range ips {
				src := netip.PrefixFrom(ip.addr.Addr(), ip.addr.Addr().BitLen())
				i := slices.IndexFunc(rules, func(r rule.From) bool {
					return r.Src == src && (n.Table == nil || r.Table == *n.Table)
				})
				if i < 0 {
					return fmt.Errorf("no rule from %s%s", src, tableNote(n.Table))
				}
				if n.Table != nil {
					continue
				}
				if why := tableDiffers(l, rules[i].Table, ip); why != "" {
					return fmt.Errorf("table %d of the rule from %s: %s", rules[i].Table, src, why)
				}
			}
			return nil
		})
	})
}

func tableNote(table *int) string {
	if table == nil {
		return ""
	}
	return fmt.Sprintf(" lookup %d", *table)
}

// tableDiffers returns why table does not route ip's traffic through l, or "".
func tableDiffers(l netlink.Link, table int, ip ipConf) string {
	routes, err := route.ListTableOf(l, table)
	if err != nil {
		return err.Error()
	}
	if len(routes) == 0 {
		return fmt.Sprintf("holds no route through %q", l.Attrs().Name)
	}
	if !ip.gw.IsValid() {
		return ""
	}
	for _, r := range routes {
		gw, _ := netip.AddrFromSlice(r.Gw)
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && gw.Unmap() == ip.gw {
			return ""
		}
	}
	return fmt.Sprintf("has no default route via %s", ip.gw)
}

// GC does nothing: everything sbr makes lives in the pod's namespace and goes with it.
func cmdGC(*NetConf, *plugin.Args) error { return nil }

// STATUS: sbr needs nothing on the node.
func cmdStatus(*NetConf, *plugin.Args) error { return nil }
