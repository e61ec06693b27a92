package main

import (
	"net"

	reflink "github.com/containernetworking/plugins/pkg/link"

	"github.com/netloom/netloom/pkg/plugin"
)

// newSpoofChecker returns the reference suite's MAC spoof-check rules for this attachment (an nftables
// table keyed by containerID-ifname). Using the same implementation keeps the rule layout identical, so a
// node that switches suites can still remove rules the other one made.
func newSpoofChecker(hostIf string, mac net.HardwareAddr, args *plugin.Args) *reflink.SpoofChecker {
	m := ""
	if mac != nil {
		m = mac.String()
	}
	return reflink.NewSpoofChecker(hostIf, m, args.ContainerID+"-"+args.IfName)
}
