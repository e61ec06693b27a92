package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/netloom/netloom/pkg/dhcp"
)

// parseArgs parses a command's configuration (dhcp.NetConf: the keys the daemon reads too).
func parseArgs(args *skel.CmdArgs) (*dhcp.NetConf, error) { return dhcp.ParseConfig(args.StdinData) }
