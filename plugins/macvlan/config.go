package main

import (
	"net"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

const (
	// maxBcQueueLen bounds "bcqueuelen" as the kernel's u32 attribute does.
	maxBcQueueLen = 1<<32 - 1
)

// modes is the "mode" key's table, in the kernel's order; "" means the reference's default, bridge.
func modes() hostlink.Modes[netlink.MacvlanMode] {
	return hostlink.Modes[netlink.MacvlanMode]{Default: netlink.MACVLAN_MODE_BRIDGE, List: []hostlink.Mode[netlink.MacvlanMode]{
		{Name: "private", Value: netlink.MACVLAN_MODE_PRIVATE},
		{Name: "vepa", Value: netlink.MACVLAN_MODE_VEPA},
		{Name: "bridge", Value: netlink.MACVLAN_MODE_BRIDGE},
		{Name: "passthru", Value: netlink.MACVLAN_MODE_PASSTHRU},
		{Name: "source", Value: netlink.MACVLAN_MODE_SOURCE},
	}}
}

func parseMode(s string) (netlink.MacvlanMode, bool) { return modes().Parse(s) }

func modeName(m netlink.MacvlanMode) string { return modes().Name(m) }

// NetConf is the macvlan plugin's configuration: every key of the reference macvlan plugin.
type NetConf struct {
	types.NetConf
	Master          string `json:"master"`
	Mode            string `json:"mode"`
	MTU             int    `json:"mtu"`
	MAC             string `json:"mac,omitempty"`
	LinkInContainer bool   `json:"linkInContainer,omitempty"`
	BcQueueLen      int64  `json:"bcqueuelen,omitempty"`

	RuntimeConfig struct {
		MAC string `json:"mac,omitempty"`
	} `json:"runtimeConfig"`

	// Derived during validation.
	mode  netlink.MacvlanMode
	mac   net.HardwareAddr
	hasL3 bool
}

// parseArgs parses a command's configuration and CNI_ARGS.
func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData, args.Args) }

// parseConfig decodes and validates stdin; cniArgs is CNI_ARGS. What needs the master (its existence,
// its MTU) is checked at ADD, where the master is looked up; DEL must work without it.
func parseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, func(n *NetConf) error { return n.validate(cniArgs) })
}

func (n *NetConf) validate(cniArgs string) error {
	if n.Master != "" {
		if err := conf.ValidateIfName("master", n.Master); err != nil {
			return err
		}
	}
	m, ok := parseMode(n.Mode)
	if !ok {
		return conf.Invalid("mode", "%q is not a macvlan mode; use \"bridge\" (the default), \"private\", \"vepa\", \"passthru\" or \"source\"", n.Mode)
	}
	n.mode = m
	// The master's MTU bounds it too, checked once the master is found (hostlink.MTUFor).
	if err := conf.CheckMTU(n.MTU, "the master's"); err != nil {
		return err
	}
	if n.BcQueueLen < 0 || n.BcQueueLen > maxBcQueueLen {
		return conf.Invalid("bcqueuelen", "%d is out of range; use 0..%d (0: the kernel's default)", n.BcQueueLen, int64(maxBcQueueLen))
	}
	n.hasL3 = n.IPAM.Type != ""
	return n.pickMAC(cniArgs)
}

// pickMAC applies the reference's precedence: "mac", then CNI_ARGS MAC, then runtimeConfig.mac (the
// "mac" capability).
func (n *NetConf) pickMAC(cniArgs string) error {
	fromArgs, _ := conf.CNIArg(cniArgs, "MAC")
	mac, err := conf.PickMAC(
		conf.MACSource{Field: "mac", Value: n.MAC},
		conf.MACSource{Field: "CNI_ARGS MAC", Value: fromArgs},
		conf.MACSource{Field: "runtimeConfig.mac", Value: n.RuntimeConfig.MAC},
	)
	n.mac = mac
	return err
}

// The stacked-link commands' view of the configuration (hostlink.Config): DEL, CHECK, GC and STATUS
// are hostlink's.

func (n *NetConf) Net() *types.NetConf { return &n.NetConf }

func (n *NetConf) IPAMType() string {
	if !n.hasL3 {
		return ""
	}
	return n.IPAM.Type
}

// MasterFor: with linkInContainer the master is in each pod's namespace, which STATUS does not know.
func (n *NetConf) MasterFor(pod ns.NetNS) (hostlink.Master, bool) {
	return master(n, pod), pod != nil || !n.LinkInContainer
}

func (n *NetConf) Inspect(l netlink.Link) error {
	return hostlink.InspectKind(l, "macvlan", func(m *netlink.Macvlan) netlink.MacvlanMode { return m.Mode }, n.mode, modeName)
}
