package doctor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
)

// attachment is one pod's attachment to one network as the runtime recorded it in libcni's result
// cache (CacheDir/results/<network>-<container>-<ifname>, kind "cniCacheV1").
type attachment struct {
	Kind           string `json:"kind"`
	ContainerID    string `json:"containerId"`
	IfName         string `json:"ifName"`
	NetworkName    string `json:"networkName"`
	NetNS          string `json:"netns"`
	CapabilityArgs struct {
		PortMappings []json.RawMessage `json:"portMappings"`
	} `json:"capabilityArgs"`
	Result struct {
		Interfaces []struct {
			Name    string `json:"name"`
			Sandbox string `json:"sandbox"`
		} `json:"interfaces"`
	} `json:"result"`
}

// hostInterfaces are the attachment's interfaces on the node's side (no sandbox): its bridge, its veth.
func (a attachment) hostInterfaces() []string {
	var out []string
	for _, i := range a.Result.Interfaces {
		if i.Sandbox == "" && i.Name != "" {
			out = append(out, i.Name)
		}
	}
	return out
}

// cachedAttachments reads every attachment of the result cache, in file name order. Files of another
// kind or that do not parse are skipped, as libcni skips them.
func cachedAttachments(cacheDir string) ([]attachment, error) {
	dir := filepath.Join(cacheDir, "results")
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out []attachment
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		var a attachment
		if json.Unmarshal(b, &a) != nil || a.Kind != "cniCacheV1" || a.ContainerID == "" {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}
