package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/netloom/netloom/pkg/atomicfile"
	"github.com/netloom/netloom/pkg/overlay"
)

// overlayKind is the overlay plugin of a tunnelled mode.
func overlayKind(c *Config) overlay.Kind {
	if c.Mode == ModeIPIP {
		return overlay.IPIP
	}
	return overlay.VXLAN
}

// conflistVersion is the CNI version of the conflist the agent writes when the runtime reads it: 1.1.0,
// so runtimes send GC and STATUS. legacyVersion is for runtimes whose CNI library stops at 1.0.0
// (containerd before 2.0 refuses a 1.1.0 result: "unsupported CNI result version").
const (
	conflistVersion = "1.1.0"
	legacyVersion   = "1.0.0"
)

// CNIVersionFor is the conflist's cniVersion on a node whose runtime is runtimeVersion (the Node's
// status.nodeInfo.containerRuntimeVersion, "containerd://1.7.24"): the "cniVersion" key when set, else
// 1.1.0 for containerd 2 and later, else 1.0.0, which every runtime in use reads.
func CNIVersionFor(c *Config, runtimeVersion string) string {
	if c.CNIVersion != "" {
		return c.CNIVersion
	}
	if v, ok := strings.CutPrefix(runtimeVersion, "containerd://"); ok {
		v = strings.TrimPrefix(v, "v")
		if major, _, _ := strings.Cut(v, "."); major != "" && major != "0" && major != "1" && isDigits(major) {
			return conflistVersion
		}
	}
	return legacyVersion
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// RenderConflist is the node's conflist for c's mode and the node's pod CIDRs: in routed mode, pods on
// c.Bridge with the bridge as their gateway and default route, addresses from host-local over every
// pod CIDR (dual-stack: one range set per family), portmap chained for hostPorts.
//
// In vxlan and ipip modes the main plugin is vxlan-overlay or ipip-overlay over the node's IPv4 pod CIDR
// and InternalIP, with the peers file the agent writes, masquerading what leaves the cluster CIDR when
// one is set (unless the "masquerade" key is false).
func RenderConflist(c *Config, self Node) ([]byte, error) {
	if len(self.PodCIDRs) == 0 {
		return nil, fmt.Errorf("node %s has no spec.podCIDRs yet", self.Name)
	}
	main, err := mainPlugin(c, self)
	if err != nil {
		return nil, err
	}
	plugins := []any{main}
	if c.Mode == ModeBGP {
		// The agent originates the pod CIDRs itself; bgp-route checks on each ADD that they are
		// announced, so a pod never starts on a node its peers cannot reach.
		plugins = append(plugins, map[string]any{"type": "bgp-route", "announce": "node", "speaker": "unix://" + c.BGPSocket()})
	}
	plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
	if c.tmpl != nil {
		return renderTemplate(c, self, plugins)
	}
	list := map[string]any{
		"cniVersion": CNIVersionFor(c, self.RuntimeVersion),
		"name":       c.NetworkName,
		"plugins":    plugins,
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func mainPlugin(c *Config, self Node) (map[string]any, error) {
	if c.Mode == ModeRouted || c.Mode == ModeBGP {
		return bridgePlugin(c, self), nil
	}
	return tunnelPlugin(c, self)
}

// tunnelPlugin is the overlay plugin's configuration for this node in vxlan or ipip mode.
func tunnelPlugin(c *Config, self Node) (map[string]any, error) {
	pod, ip, ok := self.v4()
	if !ok {
		return nil, fmt.Errorf("node %s: %s mode needs an IPv4 pod CIDR and an IPv4 InternalIP (it has %v and %v)", self.Name, c.Mode, self.PodCIDRs, self.InternalIPs)
	}
	ipam := map[string]any{"type": "host-local"}
	if c.IPAMDataDir != "" {
		ipam["dataDir"] = c.IPAMDataDir
	}
	p := map[string]any{
		"type":      overlayKind(c).Plugin,
		"podCIDR":   pod.String(),
		"nodeIP":    ip.String(),
		"peersFile": c.PeersFile(),
		"ipam":      ipam,
	}
	if c.Mode == ModeIPIP {
		p["mode"] = c.IPIPMode
	} else {
		p["vni"] = c.VNI
	}
	if cc, ok := c.clusterCIDR4(); ok {
		p["clusterCIDR"] = cc.String()
		p["ipMasq"] = c.Masquerades()
	}
	if c.MTU != 0 {
		p["mtu"] = c.MTU
	}
	return p, nil
}

// bridgePlugin is routed mode's bridge configuration for this node.
func bridgePlugin(c *Config, self Node) map[string]any {
	var ranges [][]map[string]string
	var routes []map[string]string
	for _, p := range self.PodCIDRs {
		ranges = append(ranges, []map[string]string{{"subnet": p.String()}})
		dst := "0.0.0.0/0"
		if p.Addr().Is6() {
			dst = "::/0"
		}
		routes = append(routes, map[string]string{"dst": dst})
	}
	bridge := map[string]any{
		"type":             "bridge",
		"bridge":           c.Bridge,
		"isGateway":        true,
		"isDefaultGateway": true,
		"hairpinMode":      true,
		"ipam": map[string]any{
			"type":   "host-local",
			"ranges": ranges,
			"routes": routes,
		},
	}
	if c.MTU != 0 {
		bridge["mtu"] = c.MTU
	}
	if c.IPAMDataDir != "" {
		bridge["ipam"].(map[string]any)["dataDir"] = c.IPAMDataDir
	}
	return bridge
}

// WriteIfChanged makes path hold data: nothing is written when it already does (changed false);
// otherwise it is replaced atomically (atomicfile.Write), so a runtime reading the directory sees the old
// file or the new one, never part of one. The directory is created when missing.
func WriteIfChanged(path string, data []byte, perm os.FileMode) (changed bool, err error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	if err := atomicfile.Write(path, bytes.NewReader(data), perm); err != nil {
		return false, err
	}
	return true, nil
}
