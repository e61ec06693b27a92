package main

import (
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

// cmdAdd creates the VLAN link on the master straight into the pod (hostlink.Attach: steps allocate,
// create, configure, each a fault point, rolled back on failure).
func cmdAdd(n *NetConf, args *plugin.Args) error {
	result, err := hostlink.Attach(args.Netns, hostlink.Stacked{
		IfName: args.IfName,
		Find: func(pod ns.NetNS) (hostlink.Master, netlink.Link, error) {
			m := master(n, pod)
			ml, err := m.Find()
			return m, ml, err
		},
		MTU: n.MTU,
		New: func(attrs netlink.LinkAttrs) netlink.Link {
			return &netlink.Vlan{LinkAttrs: attrs, VlanId: n.VlanID}
		},
		Explain:  func(ml netlink.Link, err error) error { return hostlink.CreateError("vlan", "802.1q", ml, err) },
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
