// Package cniconf loads network configurations as the runtimes do (containerd and CRI-O through
// libcni): the files of a conf dir, and a configuration that libcni cached with an attachment. It is
// the one loader of netloom doctor and netloom ls.
package cniconf

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// Extensions are the files a runtime loads from its conf dir.
var Extensions = []string{".conf", ".conflist", ".json"}

// Network is one file of a conf dir.
type Network struct {
	// File is where it was read from.
	File string
	// List is nil when the file did not load; Err then says why.
	List *libcni.NetworkConfigList
	Err  error
}

// LoadDir reads every network configuration in dir: the files ending in .conf, .conflist or .json, in
// name order. A file that does not load is kept with its error, so a report can name it.
func LoadDir(dir string) ([]Network, error) {
	files, err := libcni.ConfFiles(dir, Extensions)
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

// LoadFile reads one network configuration file: a conflist, or a single plugin's configuration,
// which becomes a one-plugin list.
func LoadFile(path string) Network {
	n := Network{File: path}
	b, err := os.ReadFile(path)
	if err != nil {
		n.Err = err
		return n
	}
	if strings.HasSuffix(path, ".conflist") {
		n.List, n.Err = libcni.ConfListFromBytes(b)
	} else {
		n.List, n.Err = ListFromBytes(b)
	}
	return n
}

// ListFromBytes parses a network configuration: a whole list, or one plugin's configuration, which it
// wraps into a list of one as containerd and CRI-O still do with a .conf file (libcni deprecates the
// format, but runtimes load it, and libcni caches it so for AddNetwork).
func ListFromBytes(config []byte) (*libcni.NetworkConfigList, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(config, &probe); err != nil {
		return nil, err
	}
	if _, ok := probe["plugins"]; !ok {
		var plugin struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(config, &plugin); err != nil {
			return nil, err
		}
		if plugin.Type == "" {
			return nil, fmt.Errorf(`no "type": neither a plugin configuration nor a conflist`)
		}
		wrapped, err := json.Marshal(map[string]any{"cniVersion": probe["cniVersion"], "name": probe["name"], "plugins": []json.RawMessage{config}})
		if err != nil {
			return nil, err
		}
		config = wrapped
	}
	return libcni.ConfListFromBytes(config)
}
