// Command ipip-overlay attaches pods by routed veths and routes other nodes' pod CIDRs through one IP-in-IP
// device, encapsulating to every peer or, in crossSubnet mode, only to peers outside this node's subnet.
// See README.md.
package main

import (
	"github.com/netloom/netloom/pkg/overlay"
	"github.com/netloom/netloom/pkg/plugin"
)

func main() { plugin.Main(overlay.IPIP.Plugin, overlay.Commands(overlay.IPIP)) }
