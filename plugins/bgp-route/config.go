package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/bgp"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
)

// Announce modes.
const (
	announcePod  = "pod"
	announceNode = "node"
)

// NetConf is bgp-route's configuration.
type NetConf struct {
	types.NetConf
	Announce    string   `json:"announce,omitempty"`
	Speaker     string   `json:"speaker,omitempty"`
	NextHop     string   `json:"nextHop,omitempty"`
	Communities []string `json:"communities,omitempty"`
	PodCIDR     string   `json:"podCIDR,omitempty"`
	StateDir    string   `json:"stateDir,omitempty"`

	nextHop     netip.Addr
	communities []uint32
	podCIDR     netip.Prefix
	prev        *current.Result
}

// parseArgs parses a command's configuration.
func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{Announce: announcePod, Speaker: "unix://" + bgp.DefaultSocket, StateDir: bgp.DefaultStateDir}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	switch n.Announce {
	case announcePod, announceNode:
	default:
		return conf.Invalid("announce", "%q is not a mode; want %q (each pod address as a /32 or /128) or %q (the node's pod CIDR)", n.Announce, announcePod, announceNode)
	}
	if n.Speaker == "" || (strings.HasPrefix(n.Speaker, "unix://") && !strings.HasPrefix(n.Speaker, "unix:///")) {
		return conf.Invalid("speaker", "%q is not an address; want \"unix:///run/netloom/netloomd.sock\" or \"host:port\" of a gobgpd's API", n.Speaker)
	}
	if n.NextHop != "" {
		a, err := netip.ParseAddr(n.NextHop)
		if err != nil || a.Zone() != "" {
			return conf.Invalid("nextHop", "%q is not an IP address; leave it out to let the speaker use its own address towards each peer", n.NextHop)
		}
		n.nextHop = a.Unmap()
	}
	for i, c := range n.Communities {
		v, err := bgp.ParseCommunity(c)
		if err != nil {
			return conf.Invalid(fmt.Sprintf("communities[%d]", i), "%v", err)
		}
		n.communities = append(n.communities, v)
	}
	if n.PodCIDR != "" {
		p, err := netip.ParsePrefix(n.PodCIDR)
		if err != nil || p.Masked() != p {
			return conf.Invalid("podCIDR", "%q is not a CIDR with host bits zero, e.g. \"10.244.1.0/24\"", n.PodCIDR)
		}
		n.podCIDR = p
		if n.nextHop.IsValid() && n.nextHop.Is4() != p.Addr().Is4() {
			return conf.Invalid("nextHop", "%s is not of the family of podCIDR %s; nothing could be announced", n.nextHop, p)
		}
	}
	if !strings.HasPrefix(n.StateDir, "/") {
		return conf.Invalid("stateDir", "%q is not an absolute path", n.StateDir)
	}
	if n.Name == "" {
		return conf.Invalid("name", "is missing; the network's name keys bgp-route's records")
	}
	var err error
	n.prev, err = conf.PrevResult(&n.NetConf)
	return err
}

// announcements are what ADD originates for res's addresses: one host prefix per pod address, or in
// node mode the node's pod CIDR (podCIDR, else each address's subnet).
func (n *NetConf) announcements(res *current.Result) ([]bgp.Announcement, error) {
	var out []bgp.Announcement
	seen := map[netip.Prefix]bool{}
	add := func(p netip.Prefix) {
		if n.nextHop.IsValid() && n.nextHop.Is4() != p.Addr().Is4() {
			return // the next hop is of the other family: nothing to announce for this one
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, bgp.Announcement{Prefix: p, NextHop: n.nextHop, Communities: n.communities})
		}
	}
	if n.Announce == announceNode && n.podCIDR.IsValid() {
		add(n.podCIDR)
		return out, nil
	}
	for i, ipc := range res.IPs {
		ones, _ := ipc.Address.Mask.Size()
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			return nil, conf.Invalid("prevResult", "ips[%d].address %v is not an address", i, ipc.Address)
		}
		a = a.Unmap()
		if n.Announce == announcePod {
			add(netip.PrefixFrom(a, a.BitLen()))
		} else {
			add(netip.PrefixFrom(a, ones).Masked())
		}
	}
	if len(out) == 0 {
		return nil, conf.Invalid("prevResult", "has no address to announce; bgp-route goes after a plugin that assigns the pod's addresses")
	}
	return out, nil
}
