package doctor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// Defaults of a node, as containerd and CRI-O use them.
const (
	DefaultConfDir  = "/etc/cni/net.d"
	DefaultBinDir   = "/opt/cni/bin"
	DefaultCacheDir = "/var/lib/cni"
)

// confExtensions are the files a runtime loads from its conf dir (containerd and CRI-O through libcni).
var confExtensions = []string{".conf", ".conflist", ".json"}

// LoadConfDir reads every network configuration in dir as a runtime does: the files ending in .conf,
// .conflist or .json, in name order, a single-plugin .conf (or .json) becoming a one-plugin list. A
// file that does not parse is kept with its error, so the report names it.
func LoadConfDir(dir string) ([]Network, error) {
	files, err := libcni.ConfFiles(dir, confExtensions)
	if err != nil {
		return nil, fmt.Errorf("conf dir %s: %w", dir, err)
	}
	sort.Strings(files)
	nets := make([]Network, 0, len(files))
	for _, f := range files {
		nets = append(nets, LoadFile(f))
	}
	return nets, nil
}

// LoadFile reads one network configuration file, a conflist or a single plugin's config.
func LoadFile(path string) Network {
	n := Network{File: path}
	b, err := os.ReadFile(path)
	if err != nil {
		n.Err = err
		return n
	}
	if strings.HasSuffix(path, ".conflist") || isList(b) {
		n.List, n.Err = libcni.NetworkConfFromFile(path)
		return n
	}
	c, err := libcni.NetworkPluginConfFromBytes(b)
	if err != nil {
		n.Err = err
		return n
	}
	if c.Network.Type == "" {
		n.Err = fmt.Errorf("%s: no \"type\": neither a plugin config nor a conflist", filepath.Base(path))
		return n
	}
	n.List, n.Err = listOf(c, b)
	return n
}

// listOf wraps a single plugin's config into a one-plugin conflist, as containerd and CRI-O still do
// with a .conf file (libcni deprecates the format but runtimes load it).
func listOf(c *libcni.PluginConfig, raw []byte) (*libcni.NetworkConfigList, error) {
	b, err := json.Marshal(map[string]any{"cniVersion": c.Network.CNIVersion, "name": c.Network.Name, "plugins": []json.RawMessage{raw}})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// isList tells a conflist written in a .json file from a single plugin's config.
func isList(b []byte) bool {
	c, err := libcni.NetworkPluginConfFromBytes(b)
	return err == nil && c.Network.Type == "" && strings.Contains(string(b), `"plugins"`)
}

// BinDirs is the plugin search path: dir when set, else CNI_PATH (colon-separated), else the default.
func BinDirs(dir, cniPath string) []string {
	if dir != "" {
		return filepath.SplitList(dir)
	}
	if cniPath != "" {
		return filepath.SplitList(cniPath)
	}
	return []string{DefaultBinDir}
}
