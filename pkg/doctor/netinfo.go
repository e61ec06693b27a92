package doctor

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/netloom/netloom/pkg/overlay"
)

// defaultBridge is the bridge plugin's "bridge" when the key is absent (netloom's and the reference's).
const defaultBridge = "cni0"

// overlayTypes are the plugins whose pod traffic leaves the node through a tunnel device.
var overlayTypes = map[string]bool{"vxlan-overlay": true, "ipip-overlay": true}

// routedTypes are the plugins whose pods reach other nodes through the host's IP stack (forwarding and
// the FORWARD chain), unlike macvlan, ipvlan or host-device whose pods leave through their own device.
var routedTypes = map[string]bool{"bridge": true, "ptp": true, "vxlan-overlay": true, "ipip-overlay": true}

// netInfo is what the checks need to know about one network: its pod prefixes and the host devices
// that are its own (a bridge, a tunnel), read from its plugins' configs.
type netInfo struct {
	Name, File string
	CNIVersion string
	// Types are the plugin types in chain order.
	Types []string
	// Prefixes are the IPAM subnets and ranges (host-local's ranges and subnet, static's addresses,
	// an overlay's podCIDR), deduplicated.
	Prefixes []netip.Prefix
	// Bridges are the bridge plugin's bridges; Tunnels the overlay plugins' tunnel devices.
	Bridges []string
	Tunnels []string
	// Routed is set when a plugin's pods reach other nodes through the host's forwarding.
	Routed bool
}

// pluginKeys is the part of a plugin config that netInfo reads. Unknown keys are ignored: this reads
// any plugin's config, the reference's and third parties' included.
type pluginKeys struct {
	Type    string `json:"type"`
	Bridge  string `json:"bridge"`
	Device  string `json:"device"`
	VNI     *int   `json:"vni"`
	PodCIDR string `json:"podCIDR"`
	IPAM    struct {
		Type   string `json:"type"`
		Subnet string `json:"subnet"`
		Ranges [][]struct {
			Subnet string `json:"subnet"`
		} `json:"ranges"`
		Addresses []struct {
			Address string `json:"address"`
		} `json:"addresses"`
	} `json:"ipam"`
}

// infoOf reads a loaded network. Values that do not parse are skipped: the conflist check reports
// them through the plugin's own validation.
func infoOf(nw Network) netInfo {
	in := netInfo{File: nw.File}
	if nw.List == nil {
		return in
	}
	in.Name, in.CNIVersion = nw.List.Name, nw.List.CNIVersion
	for _, p := range nw.List.Plugins {
		var k pluginKeys
		if json.Unmarshal(p.Bytes, &k) != nil {
			continue
		}
		in.Types = append(in.Types, k.Type)
		in.Routed = in.Routed || routedTypes[k.Type]
		switch {
		case k.Type == "bridge":
			br := k.Bridge
			if br == "" {
				br = defaultBridge
			}
			in.Bridges = appendNew(in.Bridges, br)
		case overlayTypes[k.Type]:
			in.Tunnels = appendNew(in.Tunnels, tunnelDevice(k))
			in.addPrefix(k.PodCIDR)
		}
		in.addPrefix(k.IPAM.Subnet)
		for _, set := range k.IPAM.Ranges {
			for _, r := range set {
				in.addPrefix(r.Subnet)
			}
		}
		for _, a := range k.IPAM.Addresses {
			in.addPrefix(a.Address)
		}
	}
	return in
}

// tunnelDevice is an overlay's device: its "device" key, else the name the plugin derives from the VNI.
func tunnelDevice(k pluginKeys) string {
	if k.Device != "" {
		return k.Device
	}
	kind, vni := overlay.VXLAN, 1 // the plugin's default VNI
	if k.Type == overlay.IPIP.Plugin {
		kind = overlay.IPIP
	}
	if k.VNI != nil {
		vni = *k.VNI
	}
	return kind.DefaultDevice(vni)
}

func (in *netInfo) addPrefix(s string) {
	if s == "" {
		return
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return
	}
	in.Prefixes = appendNew(in.Prefixes, p.Masked())
}

// label names the network in a finding: "mynet (10-mynet.conflist)".
func (in netInfo) label() string {
	if in.Name == "" {
		return filepath.Base(in.File)
	}
	return fmt.Sprintf("%s (%s)", in.Name, filepath.Base(in.File))
}

// families tells which address families the network's pods use.
func (in netInfo) families() (v4, v6 bool) {
	for _, p := range in.Prefixes {
		if p.Addr().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// owns tells whether dev is one of the network's own devices.
func (in netInfo) owns(dev string) bool {
	return slices.Contains(in.Bridges, dev) || slices.Contains(in.Tunnels, dev)
}

func appendNew[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// infos reads every network that loaded.
func infos(n *Node) []netInfo {
	var out []netInfo
	for _, nw := range n.Networks {
		if nw.List != nil {
			out = append(out, infoOf(nw))
		}
	}
	return out
}
