package shaping

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/link"
)

// The reference plugin's handles (major:minor in 16 bits each): the tbf (or the htb) is the root qdisc
// 1:, the ingress qdisc ffff:, and the mirred filter sits at priority 1 under it with class 1:1.
const (
	rootHandle     uint32 = 1 << 16
	ingressHandle  uint32 = 0xffff << 16
	redirectClass  uint32 = 1<<16 | 1
	redirectPrio   uint16 = 1
	aliasPrefix           = "netloom bandwidth "
	maxAliasLength        = 255 // IFALIASZ - 1
)

var (
	errNotShaped  = errors.New("no tbf or htb root qdisc with handle 1")
	errNoRedirect = errors.New("no ingress redirect")
)

// EnsureTBF makes a tbf with t the root qdisc (handle 1:) of l, replacing the root qdisc that is there.
func EnsureTBF(l netlink.Link, t TBF) error {
	q := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: rootHandle, Parent: netlink.HANDLE_ROOT},
		Rate:       t.Rate,
		Buffer:     t.Buffer,
		Limit:      t.Limit,
	}
	return replaceRoot(l, q)
}

// replaceRoot makes q the root qdisc of l. A root qdisc of another kind is deleted first: the kernel
// replaces a qdisc in place only with one of its own kind.
func replaceRoot(l netlink.Link, q netlink.Qdisc) error {
	old, err := rootQdisc(l)
	if err != nil && !errors.Is(err, errNotShaped) {
		return err
	}
	if old != nil && old.Type() != q.Type() {
		if err := netlink.QdiscDel(old); err != nil && !gone(err) {
			return fmt.Errorf("%q: delete root %s qdisc: %w", l.Attrs().Name, old.Type(), err)
		}
	}
	if err := netlink.QdiscReplace(q); err != nil {
		return fmt.Errorf("%q: %s root qdisc: %w", l.Attrs().Name, q.Type(), err)
	}
	return nil
}

// rootQdisc returns l's root qdisc when it is a tbf or an htb with handle 1: (the bandwidth plugins'),
// or errNotShaped.
func rootQdisc(l netlink.Link) (netlink.Qdisc, error) {
	qs, err := netlinksafe.QdiscList(l)
	if err != nil {
		return nil, fmt.Errorf("%q: list qdiscs: %w", l.Attrs().Name, err)
	}
	for _, q := range qs {
		if q.Attrs().Parent != netlink.HANDLE_ROOT || q.Attrs().Handle != rootHandle {
			continue
		}
		switch q.(type) {
		case *netlink.Tbf, *netlink.Htb:
			return q, nil
		}
	}
	return nil, fmt.Errorf("%q: %w", l.Attrs().Name, errNotShaped)
}

// CheckTBF verifies that l's root qdisc is a tbf holding want.
func CheckTBF(l netlink.Link, want TBF) error {
	q, err := rootQdisc(l)
	if err != nil {
		return err
	}
	got, ok := q.(*netlink.Tbf)
	if !ok {
		return fmt.Errorf("%q: root qdisc 1: is a %s, want tbf", l.Attrs().Name, q.Type())
	}
	if why := want.Mismatch(got); why != "" {
		return fmt.Errorf("%q: tbf root qdisc has %s", l.Attrs().Name, why)
	}
	return nil
}

// RemoveRoot deletes l's root qdisc when it is the bandwidth plugins' (tbf or htb, handle 1:), leaving
// any other alone; it succeeds when there is none or the link is gone.
func RemoveRoot(l netlink.Link) error {
	q, err := rootQdisc(l)
	if errors.Is(err, errNotShaped) || gone(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.QdiscDel(q); err != nil && !gone(err) {
		return fmt.Errorf("%q: delete root %s qdisc: %w", l.Attrs().Name, q.Type(), err)
	}
	return nil
}

// IfbAlias is the alias netloom gives the ifb of an attachment: it says whose the device is, which the
// name (a hash) cannot, so GC touches only its own network's devices. "" when it would not fit.
func IfbAlias(network, containerID string) string {
	a := aliasPrefix + network + " " + containerID
	if len(a) > maxAliasLength {
		return ""
	}
	return a
}

// EnsureIfb creates the ifb device name, up, with mtu, a transmit queue of qlen packets and alias;
// an ifb already called name is adopted (brought up, its queue set). Another kind of link with the name
// is an error. The tbf layout wants qlen 0, as the reference creates it; the htb layout needs a queue
// (HTBQueueLen): its classes' default queues are as long as the device's.
func EnsureIfb(name string, mtu, qlen int, alias string) (netlink.Link, error) {
	l, err := link.ByName(name)
	if errors.Is(err, link.ErrNotFound) {
		ifb := &netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: name, Flags: net.FlagUp, MTU: mtu, TxQLen: qlen}}
		if err := netlink.LinkAdd(ifb); err != nil {
			return nil, fmt.Errorf("create ifb %q: %w", name, err)
		}
		l, err = link.ByName(name)
	}
	if err != nil {
		return nil, err
	}
	if l.Type() != "ifb" {
		return nil, fmt.Errorf("%q is a %s, not an ifb device", name, l.Type())
	}
	if l.Attrs().TxQLen != qlen {
		if err := netlink.LinkSetTxQLen(l, qlen); err != nil {
			return nil, fmt.Errorf("ifb %q: set txqueuelen %d: %w", name, qlen, err)
		}
	}
	if alias != "" && l.Attrs().Alias != alias {
		if err := netlink.LinkSetAlias(l, alias); err != nil {
			return nil, fmt.Errorf("ifb %q: set alias: %w", name, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := link.SetUp(l); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Ifb returns the ifb device called name.
func Ifb(name string) (netlink.Link, error) {
	l, err := link.ByName(name)
	if err != nil {
		return nil, err
	}
	if l.Type() != "ifb" {
		return nil, fmt.Errorf("%q is a %s, not an ifb device", name, l.Type())
	}
	return l, nil
}

// RemoveIfb deletes the ifb device called name; it succeeds when there is none. A link of another
// kind with the name is left alone.
func RemoveIfb(name string) error {
	l, err := link.ByName(name)
	if errors.Is(err, link.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Type() != "ifb" {
		return nil
	}
	return link.Remove(name)
}

// EnsureRedirect sends everything host receives to ifb: an ingress qdisc (ffff:) on host with a u32
// filter matching all packets whose action is a mirred egress redirect to ifb. Both are adopted when
// already there.
func EnsureRedirect(host, ifb netlink.Link) error {
	idx := host.Attrs().Index
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: ingressHandle, Parent: netlink.HANDLE_INGRESS}}
	if err := netlink.QdiscReplace(ingress); err != nil {
		return fmt.Errorf("%q: ingress qdisc: %w", host.Attrs().Name, err)
	}
	targets, err := redirectTargets(host)
	if err != nil {
		return err
	}
	if targets[ifb.Attrs().Index] {
		return nil
	}
	f := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: ingressHandle, Priority: redirectPrio, Protocol: syscall.ETH_P_ALL},
		ClassId:     redirectClass,
		RedirIndex:  ifb.Attrs().Index,
		Actions: []netlink.Action{&netlink.MirredAction{
			MirredAction: netlink.TCA_EGRESS_REDIR,
			Ifindex:      ifb.Attrs().Index,
		}},
	}
	if err := netlink.FilterAdd(f); err != nil {
		return fmt.Errorf("%q: filter redirecting ingress to %q: %w", host.Attrs().Name, ifb.Attrs().Name, err)
	}
	return nil
}

// redirectTargets returns the ifindexes that host's ingress filters redirect to (none without an
// ingress qdisc).
func redirectTargets(host netlink.Link) (map[int]bool, error) {
	out := map[int]bool{}
	fs, err := netlinksafe.FilterList(host, ingressHandle)
	if err != nil {
		if gone(err) || errors.Is(err, syscall.EINVAL) {
			return out, nil
		}
		return nil, fmt.Errorf("%q: list ingress filters: %w", host.Attrs().Name, err)
	}
	for _, f := range fs {
		u, ok := f.(*netlink.U32)
		if !ok {
			continue
		}
		for _, a := range u.Actions {
			if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_REDIR {
				out[m.Ifindex] = true
			}
		}
	}
	return out, nil
}

// CheckRedirect verifies that host's ingress redirects to ifb.
func CheckRedirect(host, ifb netlink.Link) error {
	targets, err := redirectTargets(host)
	if err != nil {
		return err
	}
	if !targets[ifb.Attrs().Index] {
		return fmt.Errorf("%q: %w to %q", host.Attrs().Name, errNoRedirect, ifb.Attrs().Name)
	}
	return nil
}

// RemoveRedirect deletes host's ingress qdisc (its filters go with it) when one of them redirects to
// an ifb device made for shaping; an ingress qdisc that is someone else's stays. It succeeds when
// there is nothing to remove.
func RemoveRedirect(host netlink.Link) error {
	targets, err := redirectTargets(host)
	if err != nil {
		return err
	}
	ours := false
	for idx := range targets {
		l, err := netlink.LinkByIndex(idx)
		// The redirect of an ifb that is already gone is a leftover of ours too.
		if err != nil || (l.Type() == "ifb" && strings.HasPrefix(l.Attrs().Name, IfbPrefix)) {
			ours = true
		}
	}
	if !ours {
		return nil
	}
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: host.Attrs().Index, Handle: ingressHandle, Parent: netlink.HANDLE_INGRESS}}
	if err := netlink.QdiscDel(ingress); err != nil && !gone(err) {
		return fmt.Errorf("%q: delete ingress qdisc: %w", host.Attrs().Name, err)
	}
	return nil
}

// Stale returns the names of the ifb devices made for shaping (named IfbPrefix...) that keep is false
// for and that belong to network: those whose alias (IfbAlias) names it, and those without an alias
// (made by the reference plugin) that no link redirects to any more, their pod's veth being gone.
func Stale(network string, keep func(name string) bool) ([]string, error) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	redirected := map[int]bool{}
	for _, l := range links {
		ts, err := redirectTargets(l)
		if err != nil {
			return nil, err
		}
		for idx := range ts {
			redirected[idx] = true
		}
	}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "ifb" || !strings.HasPrefix(a.Name, IfbPrefix) || keep(a.Name) {
			continue
		}
		mine := strings.HasPrefix(a.Alias, aliasPrefix+network+" ")
		orphan := a.Alias == "" && !redirected[a.Index]
		if mine || orphan {
			out = append(out, a.Name)
		}
	}
	return out, nil
}

// gone reports whether err says the link (or qdisc) no longer exists.
func gone(err error) bool {
	if err == nil {
		return false
	}
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENOENT) || errors.Is(err, link.ErrNotFound)
}
