package main

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

// NetConf is the tap plugin's configuration: every key of the reference tap plugin.
type NetConf struct {
	types.NetConf
	MultiQueue     bool      `json:"multiQueue"`
	MTU            int       `json:"mtu"`
	MAC            string    `json:"mac,omitempty"`
	Owner          *uint32   `json:"owner,omitempty"`
	Group          *uint32   `json:"group,omitempty"`
	SelinuxContext string    `json:"selinuxContext,omitempty"`
	Bridge         string    `json:"bridge,omitempty"`
	Args           *struct{} `json:"args,omitempty"` // accepted and ignored, as in the reference

	RuntimeConfig struct {
		MAC string `json:"mac,omitempty"` // capability "mac"
	} `json:"runtimeConfig"`

	mac net.HardwareAddr
}

func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData, args.Args) }

// parseConfig decodes and validates stdin; cniArgs is CNI_ARGS. The bridge is looked up at ADD, in the
// container's namespace.
func parseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, func(n *NetConf) error { return n.validate(cniArgs) })
}

func (n *NetConf) validate(cniArgs string) error {
	if err := conf.CheckMTU(n.MTU, "the kernel's default (1500)"); err != nil {
		return err
	}
	if n.Bridge != "" {
		if err := conf.ValidateIfName("bridge", n.Bridge); err != nil {
			return err
		}
	}
	for _, id := range []struct {
		field string
		v     *uint32
	}{{"owner", n.Owner}, {"group", n.Group}} {
		// (uid_t)-1 is the kernel's "none": leave the key out instead.
		if id.v != nil && *id.v == ^uint32(0) {
			return conf.Invalid(id.field, "%d means none; leave %q out for a tap any user with CAP_NET_ADMIN may attach to", *id.v, id.field)
		}
	}
	// The reference's precedence: "mac", then CNI_ARGS MAC, then runtimeConfig.mac (the "mac"
	// capability).
	fromArgs, _ := conf.CNIArg(cniArgs, "MAC")
	mac, err := conf.PickMAC(
		conf.MACSource{Field: "mac", Value: n.MAC},
		conf.MACSource{Field: "CNI_ARGS MAC", Value: fromArgs},
		conf.MACSource{Field: "runtimeConfig.mac", Value: n.RuntimeConfig.MAC},
	)
	n.mac = mac
	return err
}

// The hostlink commands' view of the configuration: DEL, CHECK, GC and STATUS are hostlink's.

func (n *NetConf) Net() *types.NetConf { return &n.NetConf }

func (n *NetConf) IPAMType() string { return n.IPAM.Type }

// MasterFor: a tap stacks on nothing.
func (n *NetConf) MasterFor(ns.NetNS) (hostlink.Master, bool) { return hostlink.Master{}, false }

// Inspect: the pod's interface must be a tap (not a tun), multi-queue as configured.
func (n *NetConf) Inspect(l netlink.Link) error {
	t, ok := l.(*netlink.Tuntap)
	if !ok || t.Mode != unix.IFF_TAP {
		return fmt.Errorf("%q is a %s, not a tap", l.Attrs().Name, l.Type())
	}
	if mq := t.Flags&unix.IFF_MULTI_QUEUE != 0; mq != n.MultiQueue {
		return fmt.Errorf("%q has multi-queue %v, multiQueue is %v", l.Attrs().Name, mq, n.MultiQueue)
	}
	return nil
}
