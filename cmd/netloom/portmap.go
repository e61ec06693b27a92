package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/portmap/iptables"
	"github.com/netloom/netloom/pkg/portmap/nftables"
)

// portmapUsage documents `netloom portmap to-reference`, the way back from netloom to the reference
// plugins (plugins/portmap/README.md, "Switching a node").
const portmapUsage = `usage: netloom portmap to-reference --cni-path DIR [--cache-dir DIR] [--network NAME] [--dry-run]

  Hands the host ports of running pods back to the reference portmap plugin, after the node's
  plugin directory went back to the reference suite. For every attachment in the runtime's result
  cache (DIR/results, written by libcni: containerd, CRI-O, podman) whose network chains portmap, it
  removes netloom's forwarding of that attachment (both backends) and runs the reference portmap
  found in --cni-path (the reference's own ADD, with the cached result as prevResult and the cached
  port mappings), so the reference's CHECK and DEL find exactly their own rules. When no netloom
  forwarding is left, it deletes netloom's nftables table. --dry-run lists the attachments, changing
  nothing. --cache-dir defaults to /var/lib/cni, libcni's default.
`

// cachedAttachment is the part of a libcni result-cache file ("cniCacheV1") this command reads.
type cachedAttachment struct {
	Kind           string          `json:"kind"`
	ContainerID    string          `json:"containerId"`
	Config         []byte          `json:"config"`
	IfName         string          `json:"ifName"`
	NetworkName    string          `json:"networkName"`
	NetNS          string          `json:"netns,omitempty"`
	CapabilityArgs map[string]any  `json:"capabilityArgs,omitempty"`
	Result         json.RawMessage `json:"result,omitempty"`
}

func portmapCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "to-reference" {
		fmt.Fprint(stderr, portmapUsage)
		return 2
	}
	fs := flag.NewFlagSet("netloom portmap to-reference", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cniPath := fs.String("cni-path", "", "`directories` (colon-separated) holding the reference portmap binary")
	cacheDir := fs.String("cache-dir", "/var/lib/cni", "the runtime's libcni cache `directory`")
	network := fs.String("network", "", "only this network's attachments")
	dryRun := fs.Bool("dry-run", false, "list the attachments, change nothing")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *cniPath == "" || fs.NArg() != 0 {
		fmt.Fprint(stderr, portmapUsage)
		return 2
	}
	atts, err := readCache(*cacheDir, *network)
	if err != nil {
		fmt.Fprintf(stderr, "netloom: %v\n", err)
		return 1
	}
	status := 0
	for _, a := range atts {
		call, ok, err := referenceCall(a)
		if err != nil {
			fmt.Fprintf(stderr, "netloom: %s/%s/%s: %v\n", a.NetworkName, a.ContainerID, a.IfName, err)
			status = 1
			continue
		}
		if !ok {
			continue
		}
		if *dryRun {
			fmt.Fprintf(stdout, "would hand %s/%s/%s (%d port mappings) to the reference portmap\n", a.NetworkName, a.ContainerID, a.IfName, call.mappings)
			continue
		}
		if err := toReference(a, call, *cniPath); err != nil {
			fmt.Fprintf(stderr, "netloom: %s/%s/%s: %v\n", a.NetworkName, a.ContainerID, a.IfName, err)
			status = 1
			continue
		}
		fmt.Fprintf(stdout, "handed %s/%s/%s (%d port mappings) to the reference portmap\n", a.NetworkName, a.ContainerID, a.IfName, call.mappings)
	}
	if !*dryRun && status == 0 {
		if err := dropEmptyTable(); err != nil {
			fmt.Fprintf(stderr, "netloom: %v\n", err)
			status = 1
		}
	}
	return status
}

// readCache reads every cached attachment (of network, when set), in file name order.
func readCache(dir, network string) ([]cachedAttachment, error) {
	files, err := filepath.Glob(filepath.Join(dir, "results", "*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []cachedAttachment
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var a cachedAttachment
		if err := json.Unmarshal(b, &a); err != nil || a.Kind != "cniCacheV1" || a.ContainerID == "" || a.IfName == "" {
			continue
		}
		if network == "" || a.NetworkName == network {
			out = append(out, a)
		}
	}
	return out, nil
}

// portmapCall is one reference portmap ADD: its stdin, and how many mappings it forwards.
type portmapCall struct {
	stdin    []byte
	backend  string // the backend the config names or implies for netloom, to remove from
	mappings int
}

// referenceCall builds the reference portmap's ADD for a cached attachment, as libcni would pass it:
// the portmap plugin's config with the network's name and version, runtimeConfig.portMappings from the
// cached capability arguments, and the cached result as prevResult. ok is false when the network has
// no portmap or the attachment no mappings.
func referenceCall(a cachedAttachment) (call portmapCall, ok bool, err error) {
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(a.Config, &list); err != nil {
		return call, false, fmt.Errorf("cached config: %w", err)
	}
	for _, p := range list.Plugins {
		if p["type"] != "portmap" {
			continue
		}
		conf := map[string]any{}
		for k, v := range p {
			conf[k] = v
		}
		conf["name"], conf["cniVersion"] = list.Name, list.CNIVersion
		pms := a.CapabilityArgs["portMappings"]
		caps, _ := p["capabilities"].(map[string]any)
		if pms == nil || caps["portMappings"] != true {
			if rc, _ := p["runtimeConfig"].(map[string]any); rc != nil {
				pms = rc["portMappings"]
			}
		} else {
			conf["runtimeConfig"] = map[string]any{"portMappings": pms}
		}
		n := 0
		if l, isList := pms.([]any); isList {
			n = len(l)
		}
		if n == 0 {
			return call, false, nil
		}
		if len(a.Result) > 0 {
			conf["prevResult"] = a.Result
		}
		call.stdin, err = json.Marshal(conf)
		call.mappings = n
		if b, isStr := p["backend"].(string); isStr {
			call.backend = b
		}
		return call, true, err
	}
	return call, false, nil
}

// toReference removes netloom's forwarding of a (both backends: the attachment may predate a change of
// backend) and runs the reference portmap's ADD for it.
func toReference(a cachedAttachment, call portmapCall, cniPath string) error {
	k := firewall.Key{Network: a.NetworkName, ContainerID: a.ContainerID, IfName: a.IfName}
	var errs []error
	if nftables.Available() {
		errs = append(errs, nftables.New().Remove(k, nil))
	}
	if iptables.Available() {
		// netloom's iptables rules sit in the reference's own chain with netloom's comments; the
		// reference's ADD only adds rules, so they go first.
		errs = append(errs, iptables.New().Remove(k, []portmap.HostKey{}))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove netloom's forwarding: %w", err)
	}
	dirs := filepath.SplitList(cniPath)
	bin, err := invoke.FindInPath("portmap", dirs)
	if err != nil {
		return err
	}
	netns := a.NetNS
	if netns == "" {
		netns = "/proc/self/ns/net" // the reference's portmap only requires one to be named
	}
	args := &invoke.Args{Command: "ADD", ContainerID: a.ContainerID, NetNS: netns, IfName: a.IfName, Path: cniPath}
	if _, err := invoke.ExecPluginWithResult(context.Background(), bin, call.stdin, args, nil); err != nil {
		return fmt.Errorf("reference portmap ADD (%s): %w", bin, err)
	}
	return nil
}

// dropEmptyTable deletes netloom's nftables table when none of its maps holds an element: nothing on
// the node uses it once every attachment went back.
func dropEmptyTable() error {
	if !nftables.Available() {
		return nil
	}
	empty, err := nftables.Empty()
	if err != nil || !empty {
		return err
	}
	out, err := exec.Command("nft", "delete", "table", "inet", nftables.TableName).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("nft delete table inet %s: %v: %s", nftables.TableName, err, strings.TrimSpace(string(out)))
	}
	return nil
}
