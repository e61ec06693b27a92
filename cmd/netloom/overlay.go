package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/containernetworking/cni/libcni"

	"github.com/netloom/netloom/pkg/overlay"
)

func overlaySync(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netloom overlay sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("conflist", "", "the network's conflist `file`")
	dryRun := fs.Bool("dry-run", false, "print the differences, change nothing; exit 1 if there are any")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" || fs.NArg() != 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	plugins, err := overlayPlugins(*file)
	if err != nil {
		fmt.Fprintf(stderr, "netloom: %v\n", err)
		return 1
	}
	if len(plugins) == 0 {
		fmt.Fprintf(stderr, "netloom: %s has no vxlan-overlay or ipip-overlay plugin\n", *file)
		return 1
	}
	status := 0
	for _, p := range plugins {
		changes, err := syncOne(p, *dryRun)
		for _, c := range changes {
			fmt.Fprintf(stdout, "%s: %s\n", p.kind.Plugin, c)
		}
		if err != nil {
			fmt.Fprintf(stderr, "netloom: %s: %v\n", p.kind.Plugin, err)
			status = 1
		} else if *dryRun && len(changes) > 0 {
			status = 1
		}
	}
	return status
}

type overlayPlugin struct {
	kind   overlay.Kind
	config []byte // as a runtime passes it: with the list's name and cniVersion
}

// overlayPlugins returns the overlay plugins of the conflist at path, each with the configuration a
// runtime would give it.
func overlayPlugins(path string) ([]overlayPlugin, error) {
	list, err := libcni.ConfListFromFile(path)
	if err != nil {
		return nil, err
	}
	var out []overlayPlugin
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
			return nil, fmt.Errorf("%s: plugin %q: %w", path, p.Network.Type, err)
		}
		raw["name"], raw["cniVersion"] = list.Name, list.CNIVersion
		b, err := json.Marshal(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, overlayPlugin{kind: kind, config: b})
	}
	return out, nil
}

func syncOne(p overlayPlugin, dryRun bool) ([]string, error) {
	n, err := overlay.Parse(p.kind, p.config)
	if err != nil {
		return nil, err
	}
	nw, err := n.Resolve()
	if err != nil {
		return nil, err
	}
	if dryRun {
		return nw.Diff()
	}
	return nw.Sync()
}
