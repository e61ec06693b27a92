package main

import (
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

// modes is the "mode" key's table, in the kernel's order; "" means the reference's default, l2.
func modes() hostlink.Modes[netlink.IPVlanMode] {
	return hostlink.Modes[netlink.IPVlanMode]{Default: netlink.IPVLAN_MODE_L2, List: []hostlink.Mode[netlink.IPVlanMode]{
		{Name: "l2", Value: netlink.IPVLAN_MODE_L2},
		{Name: "l3", Value: netlink.IPVLAN_MODE_L3},
		{Name: "l3s", Value: netlink.IPVLAN_MODE_L3S},
	}}
}

func parseMode(s string) (netlink.IPVlanMode, bool) { return modes().Parse(s) }

func modeName(m netlink.IPVlanMode) string { return modes().Name(m) }

// NetConf is the ipvlan plugin's configuration: every key of the reference ipvlan plugin.
type NetConf struct {
	types.NetConf
	Master          string `json:"master"`
	Mode            string `json:"mode"`
	MTU             int    `json:"mtu"`
	LinkInContainer bool   `json:"linkInContainer,omitempty"`

	// Derived during validation.
	mode netlink.IPVlanMode
	prev *current.Result // the parsed prevResult; nil without one
}

// parseArgs parses a command's configuration.
func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

// parseConfig decodes and validates stdin. What needs the master (its existence, its MTU) is checked at
// ADD, where the master is looked up; DEL must work without it. So is the need for addresses (an ipam
// section, or a prevResult with IPs): DEL must work after an ADD that failed for the lack of them.
func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	if n.Master != "" {
		if err := conf.ValidateIfName("master", n.Master); err != nil {
			return err
		}
	}
	m, ok := parseMode(n.Mode)
	if !ok {
		return conf.Invalid("mode", "%q is not an ipvlan mode; use \"l2\" (the default), \"l3\" or \"l3s\"", n.Mode)
	}
	n.mode = m
	// The master's MTU bounds it too, checked once the master is found (hostlink.MTUFor).
	if err := conf.CheckMTU(n.MTU, "the master's"); err != nil {
		return err
	}
	// On a copy: parsing clears RawPrevResult, which CHECK parses again to demand it.
	nc := n.NetConf
	prev, err := conf.PrevResult(&nc)
	if err != nil {
		return err
	}
	n.prev = prev
	return nil
}

// masterName is the master ADD uses: "master", else (the chained form) the one interface of
// prevResult, else "" for the default route's interface.
func (n *NetConf) masterName() (string, error) {
	if n.Master != "" || n.prev == nil {
		return n.Master, nil
	}
	if len(n.prev.Interfaces) != 1 || n.prev.Interfaces[0].Name == "" {
		return "", conf.Invalid("prevResult", "has %d interfaces; without \"master\", the chained ipvlan takes its master from a prevResult with exactly one named interface; set \"master\"", len(n.prev.Interfaces))
	}
	return n.prev.Interfaces[0].Name, nil
}

// addresses says where ADD's addresses come from: the prevResult's IPs when there is no ipam section
// and the prevResult has some (the chained form), else the IPAM plugin. An ipvlan needs addresses (it
// forwards by IP), so having neither is a code-7 error naming "ipam".
func (n *NetConf) addresses() (fromPrev bool, err error) {
	if n.IPAM.Type != "" {
		return false, nil
	}
	if n.prev != nil && len(n.prev.IPs) > 0 {
		return true, nil
	}
	return false, conf.Invalid("ipam", "missing; an ipvlan needs addresses: configure an IPAM plugin (e.g. {\"type\":\"host-local\",...}), or chain ipvlan after a plugin whose result has IPs")
}

// The stacked-link commands' view of the configuration (hostlink.Config): DEL, CHECK, GC and STATUS
// are hostlink's.

func (n *NetConf) Net() *types.NetConf { return &n.NetConf }

// IPAMType: in the chained form without ipam the addresses belong to the previous plugin, which
// releases them.
func (n *NetConf) IPAMType() string { return n.IPAM.Type }

// MasterFor: CHECK's prevResult is the ipvlan's own result, so a master the chained form took from the
// ADD's prevResult is no longer known: without "master" and without ipam (the chained form) the master
// is not compared. Without "master" but with ipam, ADD used the default route's interface. With
// linkInContainer the master is in each pod's namespace, which STATUS does not know.
func (n *NetConf) MasterFor(pod ns.NetNS) (hostlink.Master, bool) {
	known := n.Master != "" || n.IPAM.Type != ""
	return master(n, n.Master, pod), known && (pod != nil || !n.LinkInContainer)
}

func (n *NetConf) Inspect(l netlink.Link) error {
	return hostlink.InspectKind(l, "ipvlan", func(v *netlink.IPVlan) netlink.IPVlanMode { return v.Mode }, n.mode, modeName)
}
