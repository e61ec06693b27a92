// Package cnicache reads libcni's result cache (CacheDir/results/<network>-<container>-<ifname>, kind
// "cniCacheV1"): the attachments a runtime made, with the configuration, netns, capability arguments and
// result it recorded. netloom doctor reads the cache through it; pkg/inventory (netloom ls) and netloom
// portmap to-reference still have readers of their own, with other filters, to be moved here.
package cnicache

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
)

// Kind is the kind libcni writes into each cache file.
const Kind = "cniCacheV1"

// Interface is one interface of a cached result.
type Interface struct {
	Name    string `json:"name"`
	Sandbox string `json:"sandbox"`
}

// Entry is one pod's attachment to one network as the runtime recorded it.
type Entry struct {
	Kind           string `json:"kind"`
	ContainerID    string `json:"containerId"`
	IfName         string `json:"ifName"`
	NetworkName    string `json:"networkName"`
	NetNS          string `json:"netns"`
	Config         []byte `json:"config"` // the network configuration list; base64 in the file, as libcni writes it
	CapabilityArgs struct {
		PortMappings []json.RawMessage `json:"portMappings"`
	} `json:"capabilityArgs"`
	Result struct {
		Interfaces []Interface `json:"interfaces"`
	} `json:"result"`
}

// HostInterfaces are the entry's interfaces on the node's side (no sandbox): its bridge, its veth.
func (e Entry) HostInterfaces() []string {
	var out []string
	for _, i := range e.Result.Interfaces {
		if i.Sandbox == "" && i.Name != "" {
			out = append(out, i.Name)
		}
	}
	return out
}

// Read reads every entry of the result cache under cacheDir, in file name order. A missing cache is
// empty. Files that cannot be read, do not parse, are of another kind or name no container are skipped,
// as libcni skips them.
func Read(cacheDir string) ([]Entry, error) {
	dir := filepath.Join(cacheDir, "results")
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err // os.ReadDir names the directory
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out []Entry
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		var e Entry
		if json.Unmarshal(b, &e) != nil || e.Kind != Kind || e.ContainerID == "" {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}
