package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/containernetworking/cni/libcni"

	"github.com/netloom/netloom/pkg/overlay/conflist"
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
			fmt.Fprintf(stdout, "%s: %s\n", p.Kind.Plugin, c)
		}
		if err != nil {
			fmt.Fprintf(stderr, "netloom: %s: %v\n", p.Kind.Plugin, err)
			status = 1
		} else if *dryRun && len(changes) > 0 {
			status = 1
		}
	}
	return status
}

// overlayPlugins returns the overlay plugins of the conflist at path.
func overlayPlugins(path string) ([]conflist.Plugin, error) {
	list, err := libcni.ConfListFromFile(path)
	if err != nil {
		return nil, err
	}
	ps, err := conflist.Overlays(list)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ps, nil
}

func syncOne(p conflist.Plugin, dryRun bool) ([]string, error) {
	nw, err := p.Network()
	if err != nil {
		return nil, err
	}
	if dryRun {
		return nw.Diff()
	}
	return nw.Sync()
}
