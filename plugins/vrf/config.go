package main

import (
	"math"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
)

// NetConf is the vrf plugin's configuration: every key of the reference vrf plugin.
type NetConf struct {
	types.NetConf
	// VRFName is the VRF device in the pod's namespace that the interface joins.
	VRFName string `json:"vrfname"`
	// Table is the VRF's routing table; 0 picks the lowest that no other VRF of the pod uses.
	Table int64 `json:"table"`
}

func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

// parseConfig decodes and validates stdin; every error is a CNI error naming the key.
func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	if n.VRFName == "" {
		return conf.Invalid("vrfname", "is required: the name of the VRF device (e.g. \"blue\") to put the interface in")
	}
	if err := conf.ValidateIfName("vrfname", n.VRFName); err != nil {
		return err
	}
	if n.Table < 0 || n.Table > math.MaxUint32 {
		return conf.Invalid("table", "%d is not a routing table; use 1..%d, or 0 (or omit it) to pick the lowest table no other VRF in the pod uses", n.Table, uint32(math.MaxUint32))
	}
	return nil
}

// freeTable returns the lowest table from 1 on that no VRF in used is bound to, as the reference picks.
func freeTable(used []uint32) uint32 {
	taken := map[uint32]bool{}
	for _, t := range used {
		taken[t] = true
	}
	t := uint32(1)
	for taken[t] {
		t++
	}
	return t
}
