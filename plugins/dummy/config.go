package main

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

// NetConf is the dummy plugin's configuration: the reference's has no keys of its own; "ipam" is
// required.
type NetConf struct {
	types.NetConf
}

func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	if n.IPAM.Type == "" {
		return conf.Invalid("ipam", "missing; a dummy interface exists only to hold IPAM's addresses: add e.g. {\"type\": \"static\", \"addresses\": [...]}")
	}
	return nil
}

// The hostlink commands' view of the configuration: DEL, CHECK, GC and STATUS are hostlink's.

func (n *NetConf) Net() *types.NetConf { return &n.NetConf }

func (n *NetConf) IPAMType() string { return n.IPAM.Type }

// MasterFor: a dummy stacks on nothing.
func (n *NetConf) MasterFor(ns.NetNS) (hostlink.Master, bool) { return hostlink.Master{}, false }

// Inspect: the pod's interface must be a dummy, and up (the reference's CHECK).
func (n *NetConf) Inspect(l netlink.Link) error {
	if _, ok := l.(*netlink.Dummy); !ok {
		return fmt.Errorf("%q is a %s, not a dummy", l.Attrs().Name, l.Type())
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("%q is down", l.Attrs().Name)
	}
	return nil
}
