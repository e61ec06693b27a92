package main

import (
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

func cmdAdd(n *NetConf, args *plugin.Args) error {
	fromPrev, err := n.addresses()
	if err != nil {
		return err
	}
	// In the chained form the previous plugin's addresses move to the ipvlan, which replaces its
	// interfaces in the result, as the reference does.
	s := hostlink.Stacked{
		IfName: args.IfName,
		Find:   func(pod ns.NetNS) (hostlink.Master, netlink.Link, error) { return findMaster(n, pod) },
		MTU:    n.MTU,
		New:    func(attrs netlink.LinkAttrs) netlink.Link { return &netlink.IPVlan{LinkAttrs: attrs, Mode: n.mode} },
		Explain: func(ml netlink.Link, err error) error {
			return hostlink.CreateError("ipvlan", modeName(n.mode), ml, err)
		},
		Stdin: args.StdinData,
		Prev:  n.prev,
		DNS:   n.DNS,
	}
	if !fromPrev {
		s.IPAMType = n.IPAM.Type
	}
	result, err := hostlink.Attach(args.Netns, s)
	if err != nil {
		return err
	}
	return plugin.PrintResult(result, n.CNIVersion)
}

// master says where to find the master called name.
func master(n *NetConf, name string, pod ns.NetNS) hostlink.Master {
	return hostlink.Master{Name: name, InPod: n.LinkInContainer, Pod: pod}
}

// findMaster looks up ADD's master: "master", the chained form's prevResult interface, or the default
// route's interface.
func findMaster(n *NetConf, pod ns.NetNS) (hostlink.Master, netlink.Link, error) {
	name, err := n.masterName()
	if err != nil {
		return hostlink.Master{}, nil, err
	}
	m := master(n, name, pod)
	ml, err := m.Find()
	if err != nil && n.Master == "" && name != "" && conf.Code(err) == conf.CodeInvalidConfig {
		return m, nil, conf.Invalid("prevResult", "its interface %q, which the chained ipvlan takes as master, does not exist; set \"master\" (%v)", name, err)
	}
	return m, ml, err
}
