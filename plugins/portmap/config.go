package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/portmap"
)

// maxMarkBit is the highest bit of the 32-bit packet mark.
const maxMarkBit = 31

// NetConf is the portmap plugin's configuration: every key of the reference portmap plugin.
type NetConf struct {
	types.NetConf
	Backend              *string   `json:"backend,omitempty"`
	SNAT                 *bool     `json:"snat,omitempty"`
	ConditionsV4         *[]string `json:"conditionsV4"`
	ConditionsV6         *[]string `json:"conditionsV6"`
	MasqAll              bool      `json:"masqAll,omitempty"`
	MarkMasqBit          *int      `json:"markMasqBit"`
	ExternalSetMarkChain *string   `json:"externalSetMarkChain"`
	RuntimeConfig        struct {
		PortMaps []PortMapEntry `json:"portMappings,omitempty"`
	} `json:"runtimeConfig,omitempty"`

	// Derived during validation.
	backend string
	opts    portmap.Options
	entries []entry
	prev    *current.Result
}

// PortMapEntry is one runtimeConfig.portMappings entry, as the CNI conventions define it.
type PortMapEntry struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// entry is a validated PortMapEntry.
type entry struct {
	protocol           string
	hostIP             netip.Addr // zero: all addresses of every family
	hostPort, contPort uint16
}

// parseArgs parses a command's configuration, with the backends that work on this node.
func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData, available) }

// parseConfig decodes and validates stdin. Every error is a CNI error naming the key and saying what
// would be valid. available says whether a backend works on this node, for the default choice.
func parseConfig(stdin []byte, available func(backend string) bool) (*NetConf, error) {
	n := &NetConf{}
	if err := conf.Decode(stdin, n); err != nil {
		return nil, err
	}
	if err := conf.ValidateFileComponent("name", n.Name); err != nil {
		return nil, err
	}
	prev, err := conf.PrevResult(&n.NetConf)
	if err != nil {
		return nil, err
	}
	n.prev = prev
	if err := n.validateOptions(available); err != nil {
		return nil, err
	}
	for i, pm := range n.RuntimeConfig.PortMaps {
		e, err := parseEntry(fmt.Sprintf("runtimeConfig.portMappings[%d]", i), pm)
		if err != nil {
			return nil, err
		}
		n.entries = append(n.entries, e)
	}
	return n, nil
}

func (n *NetConf) validateOptions(available func(string) bool) error {
	n.opts = portmap.Options{SNAT: true, MasqAll: n.MasqAll, MarkMasqBit: portmap.DefaultMarkMasqBit}
	if n.SNAT != nil {
		n.opts.SNAT = *n.SNAT
	}
	if err := n.validateMarkKeys(); err != nil {
		return err
	}
	if n.ConditionsV4 != nil {
		n.opts.ConditionsV4 = *n.ConditionsV4
	}
	if n.ConditionsV6 != nil {
		n.opts.ConditionsV6 = *n.ConditionsV6
	}
	return n.pickBackend(available)
}

// validateMarkKeys checks how masqueraded packets are marked: a bit of ours, or a chain of the
// administrator's that sets the mark, not both.
func (n *NetConf) validateMarkKeys() error {
	if n.MarkMasqBit != nil && n.ExternalSetMarkChain != nil {
		return conf.Invalid("markMasqBit", "cannot be combined with \"externalSetMarkChain\": set one of them")
	}
	if n.MarkMasqBit != nil {
		if *n.MarkMasqBit < 0 || *n.MarkMasqBit > maxMarkBit {
			return conf.Invalid("markMasqBit", "%d is not a bit of the 32-bit packet mark; use 0..%d (default %d)", *n.MarkMasqBit, maxMarkBit, portmap.DefaultMarkMasqBit)
		}
		n.opts.MarkMasqBit = *n.MarkMasqBit
	}
	if n.ExternalSetMarkChain != nil {
		if *n.ExternalSetMarkChain == "" || strings.ContainsAny(*n.ExternalSetMarkChain, " \t\n\"'") {
			return conf.Invalid("externalSetMarkChain", "%q is not an iptables chain name", *n.ExternalSetMarkChain)
		}
		n.opts.ExternalSetMarkChain = *n.ExternalSetMarkChain
	}
	return nil
}

// pickBackend settles the firewall backend: the one named, else the one the keys are written for, else
// nftables where it is available. Keys written for the other backend are refused.
func (n *NetConf) pickBackend(available func(string) bool) error {
	wants := n.backendKeys()
	switch {
	case n.Backend != nil:
		n.backend = *n.Backend
		if n.backend != firewall.BackendIPTables && n.backend != firewall.BackendNFTables {
			return conf.Invalid("backend", "%q is not a backend; use %q or %q", n.backend, firewall.BackendIPTables, firewall.BackendNFTables)
		}
	case len(wants[firewall.BackendIPTables]) > 0:
		n.backend = firewall.BackendIPTables
	case len(wants[firewall.BackendNFTables]) > 0:
		n.backend = firewall.BackendNFTables
	case available(firewall.BackendNFTables):
		n.backend = firewall.BackendNFTables
	default:
		n.backend = firewall.BackendIPTables
	}
	for b, keys := range wants {
		if b != n.backend {
			return conf.Invalid(keys[0], "is written for the %s backend but the backend is %s; set \"backend\": %q or rewrite %s", b, n.backend, b, strings.Join(keys, ", "))
		}
	}
	return nil
}

// backendKeys returns, per backend, the keys set that only it understands. They decide the backend
// when none is named, so a conflist written for the reference (whose default is iptables) keeps working
// unchanged.
func (n *NetConf) backendKeys() map[string][]string {
	wants := map[string][]string{}
	if n.ExternalSetMarkChain != nil {
		wants[firewall.BackendIPTables] = append(wants[firewall.BackendIPTables], "externalSetMarkChain")
	}
	for _, c := range []struct {
		key  string
		list []string
	}{{"conditionsV4", n.opts.ConditionsV4}, {"conditionsV6", n.opts.ConditionsV6}} {
		if b := conditionsBackend(c.list); b != "" {
			wants[b] = append(wants[b], c.key)
		}
	}
	return wants
}

// conditionsBackend tells which backend's syntax conditions are written in: iptables match arguments
// start with '-' or '!', nftables expressions never do (the reference's rule).
func conditionsBackend(conds []string) string {
	if len(conds) == 0 || conds[0] == "" {
		return ""
	}
	if c := conds[0][0]; c == '-' || c == '!' {
		return firewall.BackendIPTables
	}
	return firewall.BackendNFTables
}

func parseEntry(field string, pm PortMapEntry) (entry, error) {
	e := entry{protocol: strings.ToLower(strings.TrimSpace(pm.Protocol))}
	switch e.protocol {
	case "":
		e.protocol = portmap.TCP
	case portmap.TCP, portmap.UDP, portmap.SCTP:
	default:
		return e, conf.Invalid(field+".protocol", "%q is not a protocol portmap forwards; use tcp, udp or sctp", pm.Protocol)
	}
	for _, p := range []struct {
		key string
		v   int
		dst *uint16
	}{{"hostPort", pm.HostPort, &e.hostPort}, {"containerPort", pm.ContainerPort, &e.contPort}} {
		if p.v < 1 || p.v > 65535 {
			return e, conf.Invalid(field+"."+p.key, "%d is not a port; use 1..65535", p.v)
		}
		*p.dst = uint16(p.v)
	}
	if s := strings.TrimSpace(pm.HostIP); s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return e, conf.Invalid(field+".hostIP", "%q is not an IP address; leave it empty for all of the node's addresses", pm.HostIP)
		}
		if !a.IsUnspecified() {
			e.hostIP = a.Unmap()
		} else if a.Is4() {
			// 0.0.0.0 means all IPv4 addresses only: keep the family, drop the address.
			e.hostIP = netip.IPv4Unspecified()
		} else {
			e.hostIP = netip.IPv6Unspecified()
		}
	}
	return e, nil
}

// podAddrs returns the pod interface's addresses from prevResult: one per family, the first, as the
// reference does. Addresses of other interfaces (the host side of a veth, a bridge) are skipped.
func podAddrs(prev *current.Result, ifName string) []netip.Prefix {
	var v4, v6 netip.Prefix
	for _, ip := range prev.IPs {
		if ip.Interface != nil {
			i := *ip.Interface
			if i >= 0 && i < len(prev.Interfaces) && (prev.Interfaces[i].Name != ifName || prev.Interfaces[i].Sandbox == "") {
				continue
			}
		}
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		ones, _ := ip.Address.Mask.Size()
		p := netip.PrefixFrom(a, ones)
		if a.Is4() && !v4.IsValid() {
			v4 = p
		} else if a.Is6() && !v6.IsValid() {
			v6 = p
		}
	}
	var out []netip.Prefix
	for _, p := range []netip.Prefix{v4, v6} {
		if p.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

// mappings expands the entries for the pod's addresses: an entry without hostIP applies to every
// family the pod has; one with a hostIP only to the pod address of that family (none: skipped, as
// the reference does).
func mappings(entries []entry, pod []netip.Prefix) []portmap.Mapping {
	var out []portmap.Mapping
	for _, p := range pod {
		for _, e := range entries {
			host := e.hostIP
			if host.IsValid() {
				if host.Is4() != p.Addr().Is4() {
					continue
				}
				if host.IsUnspecified() {
					host = netip.Addr{}
				}
			}
			out = append(out, portmap.Mapping{
				Protocol: e.protocol, HostIP: host, HostPort: e.hostPort,
				PodIP: p.Addr(), PodPort: e.contPort, PodSubnet: p.Masked(),
			})
		}
	}
	return out
}

// hostKeys lists the host side of the entries for both families, for Remove's hint.
func hostKeys(entries []entry) []portmap.HostKey {
	var out []portmap.HostKey
	for _, e := range entries {
		host := e.hostIP
		if host.IsValid() && host.IsUnspecified() {
			host = netip.Addr{}
		}
		out = append(out, portmap.HostKey{Protocol: e.protocol, HostIP: host, HostPort: e.hostPort})
	}
	return out
}
