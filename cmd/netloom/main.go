// Command netloom is netloom's node-side tool for work outside a CNI call. Today:
//
//	netloom overlay sync --conflist FILE [--dry-run]
//	netloom portmap to-reference --cni-path DIR [--cache-dir DIR] [--network NAME] [--dry-run]
//	netloom doctor [--conflist FILE | --conf-dir DIR] [--cni-bin-dir DIR] [--cache-dir DIR] [--json] [--fix]
//	netloom ls [--json] [--conf-dir DIR] [--cache-dir DIR]
//
// applies the peer reconcile of every vxlan-overlay and ipip-overlay plugin in FILE, exactly as their
// ADD does, without a pod: run it when a node joins or leaves (e.g. after rewriting peersFile), or from a
// timer. With --dry-run it only prints what differs and exits 1 if anything does.
//
// portmap to-reference hands the host ports of running pods back to the reference portmap plugin when a
// node goes back to the reference suite (see portmap.go and plugins/portmap/README.md).
//
// doctor checks what the node's pod networks need and prints what is wrong with the fix (doctor.go,
// pkg/doctor, README.md).
//
// ls lists the node's attachments (see ls.go and pkg/inventory).
package main

import (
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: netloom overlay sync --conflist FILE [--dry-run]
       netloom portmap to-reference --cni-path DIR [--cache-dir DIR] [--network NAME] [--dry-run]
       netloom doctor [--conflist FILE | --conf-dir DIR] [--cni-bin-dir DIR] [--cache-dir DIR] [--json] [--fix]
       netloom ls [--json] [--conf-dir DIR] [--cache-dir DIR]

  Makes the tunnel device, routes, neighbour and FDB entries of every vxlan-overlay and
  ipip-overlay plugin in FILE match its peers and peersFile. --dry-run prints the differences
  and exits 1 when there are any, changing nothing.

  portmap to-reference: see netloom portmap -h.

  doctor: checks the node's pod networks and prints each finding with its fix; exit 0 when
  nothing breaks pods, 1 when something does, 2 when a check could not look. See netloom doctor -h.

  ls: lists every attachment on the node, alive or not. See netloom ls -h.
`

func run(args []string, stdout, stderr *os.File) int {
	if len(args) >= 1 && args[0] == "ls" {
		return lsCommand(args[1:], stdout, stderr)
	}
	if len(args) >= 1 && args[0] == "portmap" {
		return portmapCommand(args[1:], stdout, stderr)
	}
	if len(args) >= 1 && args[0] == "doctor" {
		return doctorCommand(args[1:], stdout, stderr)
	}
	if len(args) < 2 || args[0] != "overlay" || args[1] != "sync" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	return overlaySync(args[2:], stdout, stderr)
}
