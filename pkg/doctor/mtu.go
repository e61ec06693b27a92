package doctor

import (
	"fmt"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/cnicache"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/overlay"
)

// hostLink is what the MTU check reads of a node's link.
type hostLink struct {
	Name   string
	Kind   string
	MTU    int
	Master string // the bridge it is a port of
	// Underlay of a tunnel: the device it sends through and the family of its local address.
	Underlay    string
	UnderlayMTU int
	Local       netip.Addr
}

func checkMTU(n *Node) []Finding {
	links, err := hostLinks()
	if err != nil {
		return []Finding{{Status: Unknown, Found: err.Error()}}
	}
	atts, err := cnicache.Read(n.cacheDir())
	if err != nil {
		return []Finding{{Status: Unknown, Found: "cannot read the result cache: " + err.Error()}}
	}
	return mtuFindings(infos(n), links, podIfaces(atts))
}

// podIface is a pod's interface of one attachment, read inside the pod's namespace.
type podIface struct {
	Network, ContainerID, IfName, NetNS string
	MTU                                 int
}

func (p podIface) subject() string {
	return fmt.Sprintf("%s/%s/%s", p.Network, shortID(p.ContainerID), p.IfName)
}

// podIfaces reads the MTU of each cached attachment's pod interface. An attachment whose namespace or
// interface is gone is skipped: a leftover is netloom ls's business.
func podIfaces(atts []cnicache.Entry) []podIface {
	var out []podIface
	for _, a := range atts {
		if a.NetNS == "" || a.IfName == "" {
			continue
		}
		p := podIface{Network: a.NetworkName, ContainerID: a.ContainerID, IfName: a.IfName, NetNS: a.NetNS}
		err := netns.With(a.NetNS, func(pod ns.NetNS) error {
			return pod.Do(func(ns.NetNS) error {
				l, err := netlinksafe.LinkByName(a.IfName)
				if err != nil {
					return err
				}
				p.MTU = l.Attrs().MTU
				return nil
			})
		})
		if err == nil {
			out = append(out, p)
		}
	}
	return out
}

// mtuFindings follows a pod's packet out of the node: pod interface -> bridge -> tunnel -> underlay. A
// pod interface or a bridge port whose MTU exceeds its bridge's (possible when an MTU was set by hand),
// a tunnel whose MTU exceeds the underlay's minus the encapsulation, or a pod interface larger than its
// network's tunnel make large packets vanish (or fragment) while pings pass.
func mtuFindings(nets []netInfo, links []hostLink, pods []podIface) []Finding {
	byName := map[string]hostLink{}
	for _, l := range links {
		byName[l.Name] = l
	}
	var out []Finding
	for _, in := range nets {
		for _, br := range in.Bridges {
			if b, ok := byName[br]; ok {
				out = append(out, bridgeMTUFinding(in, b, links))
				out = append(out, podsOver(in, b, pods)...)
			}
		}
		for _, tun := range in.Tunnels {
			if t, ok := byName[tun]; ok {
				out = append(out, tunnelMTUFinding(in, t))
				out = append(out, podsOver(in, t, pods)...)
			}
		}
	}
	if len(out) == 0 {
		out = append(out, Finding{Status: OK, Found: "no bridge or tunnel of a network exists yet"})
	}
	return out
}

func bridgeMTUFinding(in netInfo, b hostLink, links []hostLink) Finding {
	f := Finding{Subject: fmt.Sprintf("%s: bridge %s", in.Name, b.Name), Status: OK, Found: fmt.Sprintf("mtu %d, no port larger", b.MTU)}
	for _, l := range links {
		if l.Master == b.Name && l.MTU > b.MTU {
			f.Status = Fail
			f.Found = fmt.Sprintf("port %s has mtu %d, its bridge %d: the bridge drops the pod's larger frames", l.Name, l.MTU, b.MTU)
			f.Fix = fmt.Sprintf("ip link set %s mtu %d (or lower the pods' \"mtu\" in %s)", b.Name, l.MTU, in.File)
			break
		}
	}
	return f
}

func tunnelMTUFinding(in netInfo, t hostLink) Finding {
	f := Finding{Subject: fmt.Sprintf("%s: tunnel %s", in.Name, t.Name), Status: OK}
	if t.Underlay == "" {
		f.Found = fmt.Sprintf("mtu %d; underlay not known", t.MTU)
		return f
	}
	kind := overlay.VXLAN
	if t.Kind == "ipip" {
		kind = overlay.IPIP
	}
	room := t.UnderlayMTU - kind.Overhead(t.Local)
	if t.MTU > room {
		f.Status = Fail
		f.Found = fmt.Sprintf("mtu %d, but %s (mtu %d) carries %d after the %d bytes of encapsulation: larger packets are dropped",
			t.MTU, t.Underlay, t.UnderlayMTU, room, t.UnderlayMTU-room)
		f.Fix = fmt.Sprintf("ip link set %s mtu %d (and \"mtu\": %d in %s)", t.Name, room, room, in.File)
		return f
	}
	f.Found = fmt.Sprintf("mtu %d fits %s (mtu %d) after encapsulation", t.MTU, t.Underlay, t.UnderlayMTU)
	return f
}

// podsOver checks the network's pod interfaces against the device their packets leave by (bridge or
// tunnel); it reports the pods that exceed it, none when all fit.
func podsOver(in netInfo, dev hostLink, pods []podIface) []Finding {
	var out []Finding
	for _, p := range pods {
		if p.Network != in.Name || p.MTU <= dev.MTU {
			continue
		}
		out = append(out, Finding{Subject: p.subject(), Status: Fail,
			Found: fmt.Sprintf("pod interface mtu %d exceeds %s %s's %d: the pod's larger packets are dropped", p.MTU, dev.Kind, dev.Name, dev.MTU),
			Fix:   fmt.Sprintf("nsenter --net=%s ip link set %s mtu %d (and \"mtu\": %d in %s for new pods)", p.NetNS, p.IfName, dev.MTU, dev.MTU, in.File)})
	}
	return out
}

// hostLinks reads every link of the calling thread's namespace with what the MTU check needs.
func hostLinks() ([]hostLink, error) {
	links, byIndex, err := linksByIndex()
	if err != nil {
		return nil, err
	}
	out := make([]hostLink, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		h := hostLink{Name: a.Name, Kind: l.Type(), MTU: a.MTU}
		if m, ok := byIndex[a.MasterIndex]; ok {
			h.Master = m.Attrs().Name
		}
		under := 0
		switch t := l.(type) {
		case *netlink.Vxlan:
			under = t.VtepDevIndex
			h.Local, _ = netip.AddrFromSlice(t.SrcAddr)
		case *netlink.Iptun:
			under = a.ParentIndex // the kernel's IFLA_LINK (see link.TunnelMismatch)
			h.Local, _ = netip.AddrFromSlice(t.Local)
		}
		if u, ok := byIndex[under]; ok && under != 0 {
			h.Underlay, h.UnderlayMTU = u.Attrs().Name, u.Attrs().MTU
		}
		h.Local = h.Local.Unmap()
		out = append(out, h)
	}
	return out, nil
}

// linksByIndex lists the links of the calling thread's namespace, and indexes them by ifindex.
func linksByIndex() ([]netlink.Link, map[int]netlink.Link, error) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	byIndex := make(map[int]netlink.Link, len(links))
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	return links, byIndex, nil
}
