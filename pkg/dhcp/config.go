// Package dhcp is netloom's DHCP IPAM: the configuration both the dhcp plugin and its daemon read, the
// DHCP options a lease is requested with, the lease a daemon acquires, renews, rebinds and releases in a
// pod's namespace, and the unix-socket RPC (Go's net/rpc over HTTP, service "DHCP") between the plugin
// and the daemon. The RPC, the configuration keys and the DHCP client identifier are the reference dhcp
// plugin's (containernetworking/plugins v1.9.1), so either side works with the other's binary.
package dhcp

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
)

// DefaultSocketPath is where the daemon listens and the plugin dials when ipam.daemonSocketPath is unset.
const DefaultSocketPath = "/run/cni/dhcp.sock"

// maxOptionValue is the most bytes a DHCP option carries: its length is one octet (RFC 2132).
const maxOptionValue = 255

// NetConf is the network configuration as the dhcp IPAM plugin receives it: the calling plugin's whole
// configuration, of which dhcp reads "name" and "ipam".
type NetConf struct {
	types.NetConf
	IPAM *IPAMConfig `json:"ipam"`
}

// IPAMConfig is the "ipam" section: every key of the reference dhcp plugin.
type IPAMConfig struct {
	types.IPAM
	// DaemonSocketPath is the daemon's unix socket; DefaultSocketPath when empty.
	DaemonSocketPath string `json:"daemonSocketPath"`
	// ProvideOptions are options the client sends with its requests (e.g. a host name), each a fixed
	// value or one taken from CNI_ARGS.
	ProvideOptions []ProvideOption `json:"provide"`
	// RequestOptions are added to the parameter request list, which asks the server for the routers and
	// the subnet mask unless one entry sets skipDefault.
	RequestOptions []RequestOption `json:"request"`
	// Priority is the metric of every route in the result; 0 leaves it unset.
	Priority int `json:"priority,omitempty"`
}

// ProvideOption is an option sent to the server: Value, and the value of the CNI_ARGS key FromArg when
// the runtime passes it (both are sent when both are there, as the reference does).
type ProvideOption struct {
	Option  string `json:"option"`
	Value   string `json:"value"`
	FromArg string `json:"fromArg"`
}

// RequestOption names an option for the parameter request list; SkipDefault drops the default list
// (routers, subnet-mask). An entry may set only skipDefault.
type RequestOption struct {
	SkipDefault bool   `json:"skipDefault"`
	Option      string `json:"option"`
}

// SocketPath is the daemon socket the configuration names.
func (c *IPAMConfig) SocketPath() string {
	if c == nil || c.DaemonSocketPath == "" {
		return DefaultSocketPath
	}
	return c.DaemonSocketPath
}

// ParseConfig decodes and validates a network configuration. Every error is a CNI error naming the key
// and saying what would be valid.
func ParseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	if n.IPAM == nil {
		return conf.Invalid("ipam", "missing: the dhcp plugin reads its settings from the \"ipam\" section")
	}
	if n.IPAM.Priority < 0 {
		return conf.Invalid("ipam.priority", "%d is negative; want a route metric of 0 (unset) or more", n.IPAM.Priority)
	}
	for i, o := range n.IPAM.ProvideOptions {
		field := fmt.Sprintf("ipam.provide[%d]", i)
		if _, err := ParseOptionName(o.Option); err != nil {
			return conf.Invalid(field+".option", "%v", err)
		}
		if len(o.Value) > maxOptionValue {
			return conf.Invalid(field+".value", "%d bytes; a DHCP option holds at most %d", len(o.Value), maxOptionValue)
		}
	}
	for i, o := range n.IPAM.RequestOptions {
		if o.Option == "" {
			continue
		}
		if _, err := ParseOptionName(o.Option); err != nil {
			return conf.Invalid(fmt.Sprintf("ipam.request[%d].option", i), "%v", err)
		}
	}
	return nil
}
