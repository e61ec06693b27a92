package main

import (
	"errors"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

func cmdAdd(n *NetConf, args *plugin.Args) error {
	result, err := hostlink.Attach(args.Netns, hostlink.Stacked{
		IfName: args.IfName,
		Find: func(pod ns.NetNS) (hostlink.Master, netlink.Link, error) {
			m := master(n, pod)
			ml, err := m.Find()
			return m, ml, err
		},
		MTU: n.MTU,
		MAC: n.mac,
		New: func(attrs netlink.LinkAttrs) netlink.Link {
			return &netlink.Macvlan{LinkAttrs: attrs, Mode: n.mode, BCQueueLen: uint32(n.BcQueueLen)}
		},
		Explain:  func(ml netlink.Link, err error) error { return createError(n, ml, err) },
		IPAMType: n.IPAMType(),
		Stdin:    args.StdinData,
		DNS:      n.DNS,
	})
	if err != nil {
		return err
	}
	return plugin.PrintResult(result, n.CNIVersion)
}

// master says where to find the configured master.
func master(n *NetConf, pod ns.NetNS) hostlink.Master {
	return hostlink.Master{Name: n.Master, InPod: n.LinkInContainer, Pod: pod}
}

// createError adds macvlan's own refusal to the shared ones: passthru allows one macvlan per master.
func createError(n *NetConf, ml netlink.Link, err error) error {
	if errors.Is(err, syscall.EBUSY) && n.mode == netlink.MACVLAN_MODE_PASSTHRU {
		return conf.Invalid("mode", "\"passthru\" on master %q: the master already has a macvlan; passthru allows only one: %v", ml.Attrs().Name, err)
	}
	return hostlink.CreateError("macvlan", modeName(n.mode), ml, err)
}
