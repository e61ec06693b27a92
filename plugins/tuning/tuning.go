package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"strings"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/sysctl"
)

// ADD: check the sysctls against the node's allow-list, write them in the pod's namespace, save what
// the interface has now, then change its MAC, promiscuous mode, MTU, all-multicast mode and transmit
// queue length (the reference's order). The result is the previous plugin's with the new MAC. Each step
// is a fault point; a failed step puts back what the earlier ones changed, sysctls included.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	allow, err := readAllowlist(allowlistFile)
	if err != nil {
		return err
	}
	if err := checkAllowed(n.want.sysctls, allow, allowlistFile); err != nil {
		return err
	}
	prev, err := conf.ChainedPrevResult(&n.NetConf, "tuning changes an interface another plugin made (e.g. bridge)")
	if err != nil {
		return err
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			a := &adder{n: n, args: args, saveTo: savedPath(n.DataDir, args.ContainerID, args.IfName)}
			if err := a.Run(
				plugin.Do("sysctl", a.sysctls),
				plugin.Do("save", a.save),
				plugin.Do("mac", a.mac),
				plugin.Do("promisc", a.promisc),
				plugin.Do("mtu", a.mtu),
				plugin.Do("allmulti", a.allmulti),
				plugin.Do("txqlen", a.txQLen),
			); err != nil {
				return err
			}
			if n.want.mac != nil {
				setResultMAC(prev, args.IfName, n.want.mac.String())
			}
			return plugin.PrintResult(prev, n.CNIVersion)
		})
	})
}

// adder carries one ADD through its steps, inside the pod's namespace.
type adder struct {
	plugin.Add
	n      *NetConf
	args   *plugin.Args
	saveTo string
	l      netlink.Link
}

func (a *adder) sysctls() error {
	for _, s := range a.n.want.sysctls {
		key, err := sysctlPath(s.Key, a.args.IfName)
		if err != nil {
			return err
		}
		// A write-only parameter (net.ipv4.route.flush) cannot be read back: it is written without an undo.
		old, err := sysctl.Get(key)
		if errors.Is(err, fs.ErrNotExist) {
			return conf.Invalid(fmt.Sprintf("sysctl[%q]", s.Key), "the pod's namespace has no such parameter (/proc/sys/%s)", key)
		}
		readable := err == nil
		if err := sysctl.Set(key, s.Value); err != nil {
			return conf.Invalid(fmt.Sprintf("sysctl[%q]", s.Key), "the kernel refused %q: %v", s.Value, errors.Unwrap(err))
		}
		if readable {
			a.OnFailure("restore sysctl "+key, func() error { return sysctl.Set(key, old) })
		}
	}
	return nil
}

// save records what the interface has before any change, unless nothing of it changes. A file left
// by an earlier ADD of this attachment that did not finish keeps its values: they are the originals.
func (a *adder) save() error {
	if !a.n.want.changesLink() {
		return nil
	}
	l, err := link.ByName(a.args.IfName)
	if err != nil {
		return fmt.Errorf("container interface: %w", err)
	}
	a.l = l
	s := savedFor(a.n.want, link.AttrsOf(l))
	older, had, err := readSaved(a.saveTo)
	if err != nil {
		return err
	}
	if had {
		s = s.under(older)
	}
	if err := writeSaved(a.saveTo, s); err != nil {
		return err
	}
	a.OnFailure("put back saved interface state", func() error {
		if had {
			return writeSaved(a.saveTo, older)
		}
		return removeSaved(a.saveTo)
	})
	return nil
}

// change makes one change to the interface, registering how to undo it.
func (a *adder) change(what string, set func(netlink.Link) error, undo func(netlink.Link) error) error {
	if err := set(a.l); err != nil {
		return err
	}
	a.OnFailure("restore "+what, func() error { return undo(a.l) })
	return nil
}

func (a *adder) mac() error {
	if a.n.want.mac == nil {
		return nil
	}
	old := link.AttrsOf(a.l).MAC
	return a.change("MAC", func(l netlink.Link) error { return link.SetMAC(l, a.n.want.mac) },
		func(l netlink.Link) error { return link.SetMAC(l, old) })
}

func (a *adder) promisc() error {
	if !a.n.want.promisc {
		return nil
	}
	old := link.AttrsOf(a.l).Promisc
	return a.change("promiscuous mode", func(l netlink.Link) error { return link.SetPromisc(l, true) },
		func(l netlink.Link) error { return link.SetPromisc(l, old) })
}

func (a *adder) mtu() error {
	if a.n.want.mtu == 0 {
		return nil
	}
	old := link.AttrsOf(a.l).MTU
	return a.change("MTU", func(l netlink.Link) error { return link.SetMTU(l, a.n.want.mtu) },
		func(l netlink.Link) error { return link.SetMTU(l, old) })
}

func (a *adder) allmulti() error {
	if a.n.want.allmulti == nil {
		return nil
	}
	old := link.AttrsOf(a.l).Allmulti
	return a.change("all-multicast mode", func(l netlink.Link) error { return link.SetAllmulti(l, *a.n.want.allmulti) },
		func(l netlink.Link) error { return link.SetAllmulti(l, old) })
}

func (a *adder) txQLen() error {
	if a.n.want.txQLen == nil {
		return nil
	}
	old := link.AttrsOf(a.l).TxQLen
	return a.change("transmit queue length", func(l netlink.Link) error { return link.SetTxQLen(l, *a.n.want.txQLen) },
		func(l netlink.Link) error { return link.SetTxQLen(l, old) })
}

// setResultMAC reports mac for every interface of res called ifName, as the reference does.
func setResultMAC(res *current.Result, ifName, mac string) {
	for _, i := range res.Interfaces {
		if i.Name == ifName {
			i.Mac = mac
		}
	}
}

// DEL puts back what ADD saved and removes the file. With the namespace or the interface gone there is
// nothing to put back: the file goes too. A restore the kernel refuses is logged and the file kept for
// a later DEL; DEL still succeeds, as the reference's does, so the DELs of the plugins before tuning in
// the chain (which free the interface and its addresses) still run.
func cmdDel(d *delConf, args *plugin.Args) error {
	path := savedPath(d.DataDir, args.ContainerID, args.IfName)
	s, ok, err := readSaved(path)
	if err != nil || !ok {
		return err
	}
	err = netns.With(args.Netns, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			l, err := link.ByName(args.IfName)
			if errors.Is(err, link.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			return restore(l, s)
		})
	})
	if err != nil && !netns.Gone(err) {
		log.Printf("DEL %s/%s: restore the interface: %v; keeping %s for a later DEL", args.ContainerID, args.IfName, err, path)
		return nil
	}
	return removeSaved(path)
}

// CHECK compares the pod with the configuration, as the reference does: each sysctl's value, and the
// interface's MAC, MTU, all-multicast mode and transmit queue length where set; promiscuous mode must be
// on when "promisc" is true and off otherwise.
func cmdCheck(n *NetConf, args *plugin.Args) error {
	if _, err := conf.CheckPrevResult(&n.NetConf); err != nil {
		return err
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			for _, s := range n.want.sysctls {
				key, err := sysctlPath(s.Key, args.IfName)
				if err != nil {
					return err
				}
				have, err := sysctl.Get(key)
				if errors.Is(err, fs.ErrPermission) {
					continue // write-only (net.ipv4.route.flush): nothing to compare
				}
				if err != nil {
					return err
				}
				if !sameSysctlValue(have, s.Value) {
					return fmt.Errorf("sysctl %s is %q, the configuration sets %q", s.Key, have, s.Value)
				}
			}
			l, err := link.ByName(args.IfName)
			if err != nil {
				return fmt.Errorf("container interface: %w", err)
			}
			if why := linkDiffers(n.want, link.AttrsOf(l)); why != "" {
				return fmt.Errorf("interface %q: %s", args.IfName, why)
			}
			return nil
		})
	})
}

// sameSysctlValue compares values as the kernel prints them: fields of a multi-value parameter
// ("4096 87380 6291456") are separated by tabs when read, by whatever the user wrote when set.
func sameSysctlValue(have, want string) bool {
	return strings.Join(strings.Fields(have), " ") == strings.Join(strings.Fields(want), " ")
}

// linkDiffers returns why an interface with attrs does not match w, or "".
func linkDiffers(w settings, have link.Attrs) string {
	switch {
	case w.mac != nil && !bytes.Equal(w.mac, have.MAC):
		return fmt.Sprintf("MAC is %s, the configuration sets %s", have.MAC, w.mac)
	case w.promisc != have.Promisc:
		return fmt.Sprintf("promiscuous mode is %s, the configuration wants it %s", onOff(have.Promisc), onOff(w.promisc))
	case w.mtu != 0 && w.mtu != have.MTU:
		return fmt.Sprintf("MTU is %d, the configuration sets %d", have.MTU, w.mtu)
	case w.allmulti != nil && *w.allmulti != have.Allmulti:
		return fmt.Sprintf("all-multicast mode is %s, the configuration sets %s", onOff(have.Allmulti), onOff(*w.allmulti))
	case w.txQLen != nil && *w.txQLen != have.TxQLen:
		return fmt.Sprintf("transmit queue length is %d, the configuration sets %d", have.TxQLen, *w.txQLen)
	}
	return ""
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// GC does nothing: the saved-state files are named by container ID and interface only (the reference's
// layout, shared by every network using the same dataDir), so one network's list of live attachments
// cannot tell which files are stale. DEL removes each, also when the pod is already gone.
func cmdGC(*NetConf, *plugin.Args) error { return nil }

// STATUS: tuning needs nothing on the node to serve an ADD.
func cmdStatus(*NetConf, *plugin.Args) error { return nil }
