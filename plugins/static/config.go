package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/ipamconf"
	"github.com/netloom/netloom/pkg/ipamroute"
	"github.com/netloom/netloom/pkg/plugin"
)

// NetConf is what static reads of the network configuration: the ipam section plus what a runtime
// adds.
type NetConf struct {
	ipamconf.Net
	IPAM          *IPAMConf `json:"ipam"`
	RuntimeConfig struct {
		IPs []string `json:"ips,omitempty"` // capability "ips"
	} `json:"runtimeConfig"`
}

// IPAMConf is the "ipam" section.
type IPAMConf struct {
	Type      string           `json:"type"`
	Addresses []AddressConf    `json:"addresses,omitempty"`
	Routes    []ipamroute.Conf `json:"routes,omitempty"`
	DNS       types.DNS        `json:"dns"`
}

// AddressConf is one entry of "addresses".
type AddressConf struct {
	Address string `json:"address"`
	Gateway string `json:"gateway,omitempty"`
}

// Address is a validated address: the interface's address with its subnet's length (host bits kept),
// and the gateway (invalid: none).
type Address struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	Field   string // where it came from, for messages
}

// Config is a validated configuration.
type Config struct {
	CNIVersion string
	Addresses  []Address
	Routes     []*types.Route
	DNS        types.DNS
	PrevResult map[string]any
}

func parseArgs(args *plugin.Args) (*Config, error) { return parseConfig(args.StdinData, args.Args) }

// parseConfig decodes and validates stdin; cniArgs is CNI_ARGS. The addresses come from the
// reference's sources in its order of precedence, each later one replacing what came before:
//  1. ipam.addresses, followed by CNI_ARGS IP (whose items CNI_ARGS GATEWAY gives a gateway: the
//     gateway each item's subnet contains);
//  2. args.cni.ips, when not empty, instead of all of those;
//  3. runtimeConfig.ips (the "ips" capability), when not empty, instead of all of those.
//
// Every source is validated, even one a later source replaces, as the reference does.
func parseConfig(stdin []byte, cniArgs string) (*Config, error) {
	var n NetConf
	if err := conf.Decode(stdin, &n); err != nil {
		return nil, err
	}
	if n.IPAM == nil {
		return nil, conf.Invalid("ipam", "missing; static reads its addresses from the \"ipam\" section")
	}
	c := &Config{CNIVersion: n.CNIVersion, DNS: n.IPAM.DNS, PrevResult: n.RawPrevResult}
	var err error
	if c.Routes, err = ipamroute.Parse("ipam.routes", n.IPAM.Routes); err != nil {
		return nil, err
	}
	for i, a := range n.IPAM.Addresses {
		addr, err := parseAddress(fmt.Sprintf("ipam.addresses[%d]", i), a.Address, a.Gateway)
		if err != nil {
			return nil, err
		}
		c.Addresses = append(c.Addresses, addr)
	}
	fromArgs, err := cniArgsAddresses(cniArgs)
	if err != nil {
		return nil, err
	}
	c.Addresses = append(c.Addresses, fromArgs...)
	if len(n.Args.CNI.IPs) > 0 {
		if c.Addresses, err = parseList("args.cni.ips", n.Args.CNI.IPs); err != nil {
			return nil, err
		}
	}
	if len(n.RuntimeConfig.IPs) > 0 {
		if c.Addresses, err = parseList("runtimeConfig.ips", n.RuntimeConfig.IPs); err != nil {
			return nil, err
		}
	}
	if err := checkDistinct(c.Addresses); err != nil {
		return nil, err
	}
	if err := checkPerFamily(n.CNIVersion, c.Addresses); err != nil {
		return nil, err
	}
	return c, nil
}

// checkDistinct refuses an address given twice (in ipam.addresses and again in CNI_ARGS IP, say): the
// interface cannot carry it twice, the reference fails later with the kernel's "file exists", and the
// result would hold two entries for it, with possibly different gateways.
func checkDistinct(addrs []Address) error {
	for i, a := range addrs {
		for _, b := range addrs[:i] {
			if a.Prefix.Addr() == b.Prefix.Addr() {
				return conf.Invalid(a.Field, "address %s is also given by %s; give each address once", a.Prefix.Addr(), b.Field)
			}
		}
	}
	return nil
}

// cniArgsAddresses reads CNI_ARGS IP (a comma-separated list of CIDRs) and GATEWAY (a comma-separated
// list of addresses; each becomes the gateway of the IP items whose subnet contains it, the last
// one winning). Like the reference, GATEWAY applies to CNI_ARGS IP's items only.
func cniArgsAddresses(cniArgs string) ([]Address, error) {
	var out []Address
	for _, it := range ipamconf.CNIArgItems(cniArgs, "IP") {
		a, err := parseAddress(it.Field, it.Value, "")
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	for _, it := range ipamconf.CNIArgItems(cniArgs, "GATEWAY") {
		gw, err := ipamconf.ParseAddr(it.Value)
		if err != nil {
			return nil, conf.Invalid(it.Field, "%q is not an IP address", strings.TrimSpace(it.Value))
		}
		for j := range out {
			if out[j].Prefix.Masked().Contains(gw) {
				out[j].Gateway = gw
			}
		}
	}
	return out, nil
}

// parseList reads a list of CIDRs (args.cni.ips, runtimeConfig.ips): addresses without a gateway.
func parseList(field string, list []string) ([]Address, error) {
	out := make([]Address, 0, len(list))
	for i, s := range list {
		a, err := parseAddress(fmt.Sprintf("%s[%d]", field, i), s, "")
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// parseAddress validates one address in CIDR form ("10.10.0.5/24") and its optional gateway.
func parseAddress(field, cidr, gateway string) (Address, error) {
	p, err := ipamconf.ParsePrefix(cidr)
	if err != nil {
		return Address{}, conf.Invalid(field, "%q is not an address in CIDR notation, such as \"10.10.0.5/24\" or \"fd10::5/64\": %v", strings.TrimSpace(cidr), err)
	}
	a := Address{Prefix: p, Field: field}
	if gateway != "" {
		gw, err := ipamconf.ParseAddr(gateway)
		if err != nil {
			return Address{}, conf.Invalid(field+".gateway", "%q is not an IP address", gateway)
		}
		if gw.Is4() != p.Addr().Is4() {
			return Address{}, conf.Invalid(field+".gateway", "%s is not of the family of address %s", gw, p)
		}
		a.Gateway = gw
	}
	return a, nil
}

// checkPerFamily refuses more than one address per family for the results of CNI 0.2.0 and older,
// which can carry only one of each.
func checkPerFamily(cniVersion string, addrs []Address) error {
	v4, v6 := 0, 0
	for _, a := range addrs {
		if a.Prefix.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	return ipamconf.CheckPerFamily(cniVersion, "addresses", v4, v6)
}
