package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// conflistVersion is the CNI version of the conflist the agent writes: 1.1.0, so runtimes send GC and
// STATUS.
const conflistVersion = "1.1.0"

// RenderConflist is the node's conflist for c's mode and the node's pod CIDRs: in routed mode, pods on
// c.Bridge with the bridge as their gateway and default route, addresses from host-local over every
// pod CIDR (dual-stack: one range set per family), portmap chained for hostPorts.
func RenderConflist(c *Config, self Node) ([]byte, error) {
	if len(self.PodCIDRs) == 0 {
		return nil, fmt.Errorf("node %s has no spec.podCIDRs yet", self.Name)
	}
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
	list := map[string]any{
		"cniVersion": conflistVersion,
		"name":       c.NetworkName,
		"plugins": []any{
			bridge,
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// WriteIfChanged makes path hold data: nothing is written when it already does (changed false);
// otherwise data goes to a temporary file in the same directory (a name runtimes do not read: a dot
// and no .conflist suffix), which is synced and renamed over path, so a runtime reading the directory
// sees the old file or the new one, never part of one. The directory is created when missing.
func WriteIfChanged(path string, data []byte, perm os.FileMode) (changed bool, err error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err == nil {
		if err = tmp.Chmod(perm); err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return false, err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}
