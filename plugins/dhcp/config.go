package main

import (
	"github.com/netloom/netloom/pkg/dhcp"
	"github.com/netloom/netloom/pkg/plugin"
)

// parseArgs parses a command's configuration (dhcp.NetConf: the keys the daemon reads too).
func parseArgs(args *plugin.Args) (*dhcp.NetConf, error) { return dhcp.ParseConfig(args.StdinData) }
