package main

import (
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall/forward"
	"github.com/netloom/netloom/pkg/plugin"
)

// Backend names, as the reference spells them.
const (
	backendIPTables  = "iptables"
	backendFirewalld = "firewalld"
	backendNFTables  = "nftables" // netloom's own: the reference v1.9.1 has none
)

// NetConf is the firewall plugin's configuration: every key of the reference firewall plugin v1.9.1.
type NetConf struct {
	types.NetConf
	// Backend is "iptables", "firewalld", "nftables", or "" for firewalld when it runs and iptables
	// otherwise.
	Backend                string `json:"backend"`
	IptablesAdminChainName string `json:"iptablesAdminChainName,omitempty"`
	FirewalldZone          string `json:"firewalldZone,omitempty"`
	IngressPolicy          string `json:"ingressPolicy,omitempty"`

	// Derived during validation.
	admin  string         // the admin chain, with its default
	zone   string         // the firewalld zone, with its default
	policy forward.Policy // the ingress policy, with its default
}

// parseArgs parses a command's configuration.
func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

// parseConfig decodes and validates stdin. Every error is a CNI error naming the key and saying what
// would be valid.
func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	switch n.Backend {
	case "", backendIPTables, backendFirewalld, backendNFTables:
	default:
		return conf.Invalid("backend", "unknown backend %q; want \"iptables\", \"firewalld\", \"nftables\", or leave it out for firewalld when it runs and iptables otherwise", n.Backend)
	}
	n.admin = n.IptablesAdminChainName
	if n.admin == "" {
		n.admin = forward.DefaultAdminChain
	}
	if err := forward.CheckChainName(n.admin); err != nil {
		return conf.Invalid("iptablesAdminChainName", "%v; leave it out for %q", err, forward.DefaultAdminChain)
	}
	n.zone = n.FirewalldZone
	if n.zone == "" {
		n.zone = forward.DefaultZone
	}
	if strings.ContainsFunc(n.zone, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return conf.Invalid("firewalldZone", "%q holds a blank or a control character; firewalld zone names do not (leave it out for %q)", n.zone, forward.DefaultZone)
	}
	switch p := forward.Policy(n.IngressPolicy); p {
	case "":
		n.policy = forward.PolicyOpen
	case forward.PolicyOpen, forward.PolicySameBridge, forward.PolicyIsolated:
		n.policy = p
	default:
		return conf.Invalid("ingressPolicy", "unknown ingress policy %q; want \"open\" (the default), \"same-bridge\" or \"isolated\"", n.IngressPolicy)
	}
	return nil
}
