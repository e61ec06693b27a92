// Command vxlan-overlay attaches pods by routed veths and routes other nodes' pod CIDRs through a VXLAN
// device, programming each peer's VTEP as neighbour and FDB entries (no flooding, no learning). See
// README.md.
package main

import (
	"github.com/netloom/netloom/pkg/overlay"
	"github.com/netloom/netloom/pkg/plugin"
)

func main() { plugin.Main(overlay.VXLAN.Plugin, overlay.Commands(overlay.VXLAN)) }
