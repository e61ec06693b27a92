package overlay

import (
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/libcni"
)

// ListPlugin is one overlay plugin of a conflist, with the configuration a runtime would give it.
type ListPlugin struct {
	Kind   Kind
	Config []byte // the plugin's object with the list's name and cniVersion, as a runtime passes it
}

// PluginsOf returns the vxlan-overlay and ipip-overlay plugins of list, in order: what `netloom
// overlay sync` reconciles and `netloom doctor` compares.
func PluginsOf(list *libcni.NetworkConfigList) ([]ListPlugin, error) {
	var out []ListPlugin
	for _, p := range list.Plugins {
		var kind Kind
		switch p.Network.Type {
		case VXLAN.Plugin:
			kind = VXLAN
		case IPIP.Plugin:
			kind = IPIP
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
		out = append(out, ListPlugin{Kind: kind, Config: b})
	}
	return out, nil
}

// Network resolves p on this node: its configuration parsed and its node, underlay and peers found.
func (p ListPlugin) Network() (*Network, error) {
	n, err := Parse(p.Kind, p.Config)
	if err != nil {
		return nil, err
	}
	return n.Resolve()
}
