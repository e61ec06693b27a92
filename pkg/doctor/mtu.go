package doctor

import (
	"fmt"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

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
	atts, err := cachedAttachments(n.cacheDir())
	if err != nil {
		return []Finding{{Status: Unknown, Found: "cannot read the result cache: " + err.Error()}}
	}
	return mtuFindings(infos(n), links, atts)
}

// mtuFindings follows a pod's packet out of the node: pod veth -> bridge -> tunnel -> underlay. A
// bridge port whose MTU exceeds its bridge's (possible when the bridge's MTU was set by hand), a tunnel
// whose MTU exceeds the underlay's minus the encapsulation, or a pod veth larger than its network's
// tunnel make large packets vanish (or fragment) while pings pass.
func mtuFindings(nets []netInfo, links []hostLink, atts []attachment) []Finding {
	byName := map[string]hostLink{}
	for _, l := range links {
		byName[l.Name] = l
	}
	var out []Finding
	for _, in := range nets {
		for _, br := range in.Bridges {
			b, ok := byName[br]
			if !ok {
				continue
			}
			f := Finding{Subject: fmt.Sprintf("%s: bridge %s", in.Name, br), Status: OK, Found: fmt.Sprintf("mtu %d, no port larger", b.MTU)}
			for _, l := range links {
				if l.Master == br && l.MTU > b.MTU {
					f.Status = Fail
					f.Found = fmt.Sprintf("port %s has mtu %d, its bridge %d: the bridge drops the pod's larger frames", l.Name, l.MTU, b.MTU)
					f.Fix = fmt.Sprintf("ip link set %s mtu %d (or lower the pods' \"mtu\" in %s)", br, l.MTU, in.File)
					break
				}
			}
			out = append(out, f)
		}
		for _, tun := range in.Tunnels {
			t, ok := byName[tun]
			if !ok {
				continue
			}
			out = append(out, tunnelMTUFinding(in, t))
			if f, ok := podsOverTunnel(in, t, byName, atts); ok {
				out = append(out, f)
			}
		}
	}
	if len(out) == 0 {
		out = append(out, Finding{Status: OK, Found: "no bridge or tunnel of a network exists yet"})
	}
	return out
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
		f.Fix = fmt.Sprintf("set \"mtu\": %d in %s (or ip link set %s mtu %d)", room, in.File, t.Name, room)
		return f
	}
	f.Found = fmt.Sprintf("mtu %d fits %s (mtu %d) after encapsulation", t.MTU, t.Underlay, t.UnderlayMTU)
	return f
}

// podsOverTunnel checks the host ends of the network's pods against its tunnel.
func podsOverTunnel(in netInfo, t hostLink, byName map[string]hostLink, atts []attachment) (Finding, bool) {
	for _, a := range atts {
		if a.NetworkName != in.Name {
			continue
		}
		for _, name := range a.hostInterfaces() {
			l, ok := byName[name]
			if !ok || l.Kind != "veth" || l.MTU <= t.MTU {
				continue
			}
			return Finding{Subject: fmt.Sprintf("%s/%s/%s: %s", a.NetworkName, shortID(a.ContainerID), a.IfName, name), Status: Fail,
				Found: fmt.Sprintf("pod veth mtu %d exceeds tunnel %s's %d: the pod's larger packets are dropped", l.MTU, t.Name, t.MTU),
				Fix:   fmt.Sprintf("set \"mtu\": %d in %s and recreate the pod", t.MTU, in.File)}, true
		}
	}
	return Finding{}, false
}

// hostLinks reads every link of the calling thread's namespace with what the MTU check needs.
func hostLinks() ([]hostLink, error) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	byIndex := map[int]netlink.Link{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
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
			under = int(t.Link)
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
