package main

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

// maxVlanID is the largest 802.1Q VLAN ID a link can carry (4095 is reserved).
const maxVlanID = 4094

// NetConf is the vlan plugin's configuration: every key of the reference vlan plugin.
type NetConf struct {
	types.NetConf
	Master          string `json:"master"`
	VlanID          int    `json:"vlanId"`
	MTU             int    `json:"mtu,omitempty"`
	LinkInContainer bool   `json:"linkInContainer,omitempty"`
}

func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

// parseConfig decodes and validates stdin. The master's existence and MTU are checked at ADD, where it
// is looked up; DEL must work without it.
func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	if n.Master == "" {
		return conf.Invalid("master", "missing; name the interface to create the VLAN on (in the container's namespace with \"linkInContainer\")")
	}
	if err := conf.ValidateIfName("master", n.Master); err != nil {
		return err
	}
	if n.VlanID < 0 || n.VlanID > maxVlanID {
		return conf.Invalid("vlanId", "%d is out of range; use 0..%d", n.VlanID, maxVlanID)
	}
	// The master's MTU bounds it too, checked once the master is found (hostlink.MTUFor).
	return conf.CheckMTU(n.MTU, "the master's")
}

// The stacked-link commands' view of the configuration (hostlink.Config): DEL, CHECK, GC and STATUS
// are hostlink's.

func (n *NetConf) Net() *types.NetConf { return &n.NetConf }

func (n *NetConf) IPAMType() string { return n.IPAM.Type }

// MasterFor: with linkInContainer the master is in each pod's namespace, which STATUS does not know.
func (n *NetConf) MasterFor(pod ns.NetNS) (hostlink.Master, bool) {
	return master(n, pod), pod != nil || !n.LinkInContainer
}

// Inspect: the pod's interface must be a VLAN link with the configured ID and, when set, MTU.
func (n *NetConf) Inspect(l netlink.Link) error {
	v, ok := l.(*netlink.Vlan)
	if !ok {
		return fmt.Errorf("%q is a %s, not a vlan", l.Attrs().Name, l.Type())
	}
	if v.VlanId != n.VlanID {
		return fmt.Errorf("%q carries VLAN %d, vlanId is %d", l.Attrs().Name, v.VlanId, n.VlanID)
	}
	if n.MTU != 0 && l.Attrs().MTU != n.MTU {
		return fmt.Errorf("%q has MTU %d, mtu is %d", l.Attrs().Name, l.Attrs().MTU, n.MTU)
	}
	return nil
}
