package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"

	"github.com/netloom/netloom/pkg/cniconf"
	"github.com/netloom/netloom/pkg/inventory"
)

const lsUsage = `usage: netloom ls [--json] [--conf-dir DIR] [--cache-dir DIR]

  Lists every attachment on the node: network, container ID, interface, addresses, hostPorts,
  the plugins of its chain, its netns, and whether it is alive (its netns exists and holds the
  interface), from the runtime's libcni cache, host-local's leases and netloom's records (firewall,
  bgp-route, tuning, masquerade and portmap rules). An attachment only leases or records know is
  shown as "uncached"; one whose netns or interface is gone as "dead".
  --conf-dir (default /etc/cni/net.d) gives the conflists whose ipam dataDirs hold more leases;
  --cache-dir (default /var/lib/cni) is the runtime's libcni cache.
`

func lsCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netloom ls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, lsUsage) }
	asJSON := fs.Bool("json", false, "print JSON")
	confDir := fs.String("conf-dir", "/etc/cni/net.d", "the runtime's conflist `directory`")
	cacheDir := fs.String("cache-dir", "/var/lib/cni", "the runtime's libcni cache `directory`")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	nets, err := cniconf.LoadDir(*confDir)
	if err != nil {
		fmt.Fprintf(stderr, "netloom: %v\n", err)
	}
	var lists []*libcni.NetworkConfigList
	for _, n := range nets {
		if n.Err != nil {
			fmt.Fprintf(stderr, "netloom: %s: %v\n", filepath.Base(n.File), n.Err)
			continue
		}
		lists = append(lists, n.List)
	}
	inv := inventory.List(inventory.Dirs{CacheDir: *cacheDir, Networks: lists})
	write := inv.WriteTable
	if *asJSON {
		write = inv.WriteJSON
	}
	if err := write(stdout); err != nil {
		fmt.Fprintf(stderr, "netloom: %v\n", err)
		return 1
	}
	return 0
}
