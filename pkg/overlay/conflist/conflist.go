// Package conflist finds the overlay plugins of a network configuration list, for the node-side
// commands (`netloom overlay sync`, `netloom doctor`). It is apart from package overlay so that the
// plugins, which get their configuration on stdin, do not link libcni.
package conflist

import (
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/libcni"

	"github.com/netloom/netloom/pkg/overlay"
)

// Plugin is one overlay plugin of a conflist, with the configuration a runtime would give it.
type Plugin struct {
	Kind   overlay.Kind
	Config []byte // the plugin's object with the list's name and cniVersion, as a runtime passes it
}

// Overlays returns the vxlan-overlay and ipip-overlay plugins of list, in order: what `netloom
// overlay sync` reconciles and `netloom doctor` compares.
func Overlays(list *libcni.NetworkConfigList) ([]Plugin, error) {
	var out []Plugin
	for _, p := range list.Plugins {
		var kind overlay.Kind
		switch p.Network.Type {
		case overlay.VXLAN.Plugin:
			kind = overlay.VXLAN
		case overlay.IPIP.Plugin:
			kind = overlay.IPIP
		default:
			continue
		}
		var raw map[string]any
		if err := json.Unmarshal(p.Bytes, &raw); err != nil {
			return nil, fmt.Errorf("plugin %q: %w", p.Network.Type, err)
		}
		raw["name"], raw["cniVersion"] = list.Name, list.CNIVersion
		b, err := json.Marshal(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, Plugin{Kind: kind, Config: b})
	}
	return out, nil
}

// Network resolves p on this node: its configuration parsed and its node, underlay and peers found.
func (p Plugin) Network() (*overlay.Network, error) {
	n, err := overlay.Parse(p.Kind, p.Config)
	if err != nil {
		return nil, err
	}
	return n.Resolve()
}
