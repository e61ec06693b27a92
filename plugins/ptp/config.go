package main

import (
	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall/ipmasq"
	"github.com/netloom/netloom/pkg/plugin"
)

// NetConf is the ptp plugin's configuration: every key of the reference ptp plugin ("dns" and "ipam"
// come with types.NetConf).
type NetConf struct {
	types.NetConf
	IPMasq        bool    `json:"ipMasq"`
	IPMasqBackend *string `json:"ipMasqBackend,omitempty"`
	MTU           int     `json:"mtu"`

	// Derived during validation: "" (the default backend), "iptables" or "nftables".
	masqBE string
}

// parseArgs parses a command's configuration.
func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

// parseConfig decodes and validates stdin. Every error is a CNI error naming the key and saying what
// would be valid.
func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	if err := conf.CheckMTU(n.MTU, "the kernel default"); err != nil {
		return err
	}
	// The reference fails at ADD without an IPAM plugin to run; a point-to-point link needs addresses.
	if n.IPAM.Type == "" {
		return conf.Invalid("ipam", "needs a \"type\" (e.g. \"host-local\"): ptp gets the pod's addresses and gateways from an IPAM plugin")
	}
	var err error
	n.masqBE, err = ipmasq.Backend(n.IPMasqBackend)
	return err
}
