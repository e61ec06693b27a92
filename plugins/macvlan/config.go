package main

import (
	"net"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
)

const (
	minMTU = 68 // IPv4's minimum; the kernel refuses less
	// maxBcQueueLen bounds "bcqueuelen" as the kernel's u32 attribute does.
	maxBcQueueLen = 1<<32 - 1
)

// modeNames lists the "mode" values in the kernel's order, for messages and lookups.
func modeNames() []struct {
	name string
	mode netlink.MacvlanMode
} {
	return []struct {
		name string
		mode netlink.MacvlanMode
	}{
		{"private", netlink.MACVLAN_MODE_PRIVATE},
		{"vepa", netlink.MACVLAN_MODE_VEPA},
		{"bridge", netlink.MACVLAN_MODE_BRIDGE},
		{"passthru", netlink.MACVLAN_MODE_PASSTHRU},
		{"source", netlink.MACVLAN_MODE_SOURCE},
	}
}

// parseMode maps the "mode" key to the kernel's macvlan mode; "" is the reference's default, bridge.
func parseMode(s string) (netlink.MacvlanMode, bool) {
	if s == "" {
		return netlink.MACVLAN_MODE_BRIDGE, true
	}
	for _, m := range modeNames() {
		if m.name == s {
			return m.mode, true
		}
	}
	return 0, false
}

// modeName is the "mode" value of a kernel mode, for messages.
func modeName(mode netlink.MacvlanMode) string {
	for _, m := range modeNames() {
		if m.mode == mode {
			return m.name
		}
	}
	return "unknown"
}

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

// parseConfig decodes and validates stdin; cniArgs is CNI_ARGS. What needs the master (its existence,
// its MTU) is checked at ADD, where the master is looked up; DEL must work without it.
func parseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	n := &NetConf{}
	if err := conf.Decode(stdin, n); err != nil {
		return nil, err
	}
	if err := n.validate(cniArgs); err != nil {
		return nil, err
	}
	return n, nil
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
	if n.MTU != 0 && n.MTU < minMTU {
		return conf.Invalid("mtu", "%d is out of range; use %d up to the master's MTU, or omit it for the master's", n.MTU, minMTU)
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
