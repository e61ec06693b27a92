package main

import (
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/shaping"
)

// Limits is one set of bandwidth keys, in the network's configuration or in runtimeConfig's
// "bandwidth" (the capability runtimes fill from kubernetes.io/ingress-bandwidth and
// kubernetes.io/egress-bandwidth). Rates are in bits per second, bursts in bits; 0 is no limit.
// The subnet lists are netloom's (see README.md): the peers whose traffic is, or is not, shaped.
type Limits struct {
	IngressRate     uint64   `json:"ingressRate"`
	IngressBurst    uint64   `json:"ingressBurst"`
	EgressRate      uint64   `json:"egressRate"`
	EgressBurst     uint64   `json:"egressBurst"`
	UnshapedSubnets []string `json:"unshapedSubnets,omitempty"`
	ShapedSubnets   []string `json:"shapedSubnets,omitempty"`
}

// ingress is the limit on what the pod receives: a tbf on the host end of its veth.
func (l *Limits) ingress() shaping.Limit {
	return shaping.Limit{RateBits: l.IngressRate, BurstBits: l.IngressBurst}
}

// egress is the limit on what the pod sends: a tbf on the ifb its veth's ingress is redirected to.
func (l *Limits) egress() shaping.Limit {
	return shaping.Limit{RateBits: l.EgressRate, BurstBits: l.EgressBurst}
}

// NetConf is the bandwidth plugin's configuration. As in the reference, the limits come from the
// network's keys when any of the four is there, and from runtimeConfig only otherwise.
type NetConf struct {
	types.NetConf
	RuntimeConfig struct {
		Bandwidth *Limits `json:"bandwidth,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	*Limits

	// Derived during validation: the limits in force (nil: none).
	limits *Limits
	// Derived during validation: where they came from, for error messages.
	from string
	// Derived during validation: the part of the traffic shaped; no List: all of it (the tbf layout).
	subnets shaping.Subnets
}

// parseArgs parses a command's configuration.
func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

// parseConfig decodes and validates stdin. Every error is a CNI error naming the key and saying what
// would be valid.
func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	n.limits, n.from = n.Limits, ""
	if n.limits == nil && n.RuntimeConfig.Bandwidth != nil {
		n.limits, n.from = n.RuntimeConfig.Bandwidth, "runtimeConfig.bandwidth."
	}
	if n.limits == nil {
		return nil
	}
	if err := validateLimit(n.from+"ingressRate", n.from+"ingressBurst", n.limits.ingress()); err != nil {
		return err
	}
	if err := validateLimit(n.from+"egressRate", n.from+"egressBurst", n.limits.egress()); err != nil {
		return err
	}
	var err error
	n.subnets, err = subnets(n.from, n.limits)
	return err
}

// subnets parses the subnet lists: at most one of them, each entry a CIDR (host bits are dropped).
func subnets(from string, l *Limits) (shaping.Subnets, error) {
	key, list, s := from+"shapedSubnets", l.ShapedSubnets, shaping.Subnets{}
	if len(l.UnshapedSubnets) > 0 {
		if len(l.ShapedSubnets) > 0 {
			return s, conf.Invalid(from+"shapedSubnets", "cannot be set together with unshapedSubnets: list either the peers to shape or the peers to leave unshaped")
		}
		key, list, s.Exclude = from+"unshapedSubnets", l.UnshapedSubnets, true
	}
	for i, str := range list {
		p, err := netip.ParsePrefix(str)
		if err != nil {
			return s, conf.Invalid(fmt.Sprintf("%s[%d]", key, i), "%q is not a CIDR (e.g. \"10.0.0.0/8\" or \"fd00::/64\")", str)
		}
		s.List = append(s.List, p.Masked())
	}
	return s, nil
}

// validateLimit applies the reference's rules (a rate needs a burst and the other way round, a burst
// fits the kernel's 32-bit byte count) and refuses a rate below 1 byte per second, which the kernel's
// tbf cannot hold.
func validateLimit(rateKey, burstKey string, l shaping.Limit) error {
	switch {
	case l.RateBits != 0 && l.BurstBits == 0:
		return conf.Invalid(burstKey, "must be set (in bits) when %s is: the size of the bucket the rate refills", rateKey)
	case l.BurstBits != 0 && l.RateBits == 0:
		return conf.Invalid(rateKey, "must be set (in bits per second) when %s is; set both to 0 for no limit", burstKey)
	case l.BurstBits/8 >= shaping.MaxBurstBytes:
		return conf.Invalid(burstKey, "%d bits is 4 GiB or more; the kernel's tbf holds at most %d bytes", l.BurstBits, uint64(shaping.MaxBurstBytes-1))
	case l.RateBits != 0 && l.RateBits < shaping.MinRateBits:
		return conf.Invalid(rateKey, "%d bits per second is less than a byte per second; the kernel's tbf needs at least %d", l.RateBits, shaping.MinRateBits)
	}
	return nil
}

// shapes reports whether the configuration asks for any limit.
func (n *NetConf) shapes() bool {
	return n.limits != nil && (n.limits.ingress().Set() || n.limits.egress().Set())
}
