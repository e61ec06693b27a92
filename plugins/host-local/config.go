package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/ipam"
	"github.com/netloom/netloom/pkg/ipamconf"
	"github.com/netloom/netloom/pkg/ipamroute"
	"github.com/netloom/netloom/pkg/plugin"
)

// NetConf is what host-local reads of the network configuration: the ipam section plus the keys a
// runtime adds.
type NetConf struct {
	ipamconf.Net
	IPAM          *IPAMConf `json:"ipam"`
	RuntimeConfig struct {
		IPs      []string      `json:"ips,omitempty"`      // capability "ips"
		IPRanges [][]RangeConf `json:"ipRanges,omitempty"` // capability "ipRanges"
	} `json:"runtimeConfig"`
}

// IPAMConf is the "ipam" section. The embedded RangeConf is the single-range form that predates
// "ranges" (ipam.subnet, ipam.rangeStart, ...).
type IPAMConf struct {
	Type string `json:"type"`
	RangeConf
	Ranges     [][]RangeConf `json:"ranges,omitempty"`
	Routes     []RouteConf   `json:"routes,omitempty"`
	DataDir    string        `json:"dataDir,omitempty"`
	ResolvConf string        `json:"resolvConf,omitempty"`
}

// RangeConf is one range of a range set.
type RangeConf struct {
	Subnet     string `json:"subnet,omitempty"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
}

// RouteConf is one entry of "routes", as static reads it too.
type RouteConf = ipamroute.Conf

// Config is a validated configuration.
type Config struct {
	CNIVersion string
	Name       string
	DataDir    string
	ResolvConf string
	Sets       []ipam.RangeSet
	SetFields  []string    // the JSON path of each set, for messages ("ipam.ranges[1]")
	Requested  []requested // at most one per set, by set index
	Routes     []*types.Route
	PrevResult map[string]any
}

// requested is an address the runtime asked for and where it came from.
type requested struct {
	Addr  netip.Addr
	Field string // "runtimeConfig.ips[0]", "args.cni.ips[1]", "CNI_ARGS IP"
}

// setSource is a range set before validation, with its JSON path.
type setSource struct {
	field  string
	ranges []RangeConf
}

// parseArgs parses a command's configuration and CNI_ARGS.
func parseArgs(args *plugin.Args) (*Config, error) { return parseConfig(args.StdinData, args.Args) }

// parseConfig decodes and validates stdin; cniArgs is CNI_ARGS. Every error is a CNI error (code 7
// unless the JSON itself is broken) naming the key and saying what would be valid.
func parseConfig(stdin []byte, cniArgs string) (*Config, error) {
	var n NetConf
	if err := conf.Decode(stdin, &n); err != nil {
		return nil, err
	}
	if n.IPAM == nil {
		return nil, conf.Invalid("ipam", "missing; host-local reads its ranges from the \"ipam\" section")
	}
	if err := conf.ValidateFileComponent("name (network name)", n.Name); err != nil {
		return nil, err
	}
	c := &Config{
		CNIVersion: n.CNIVersion,
		Name:       n.Name,
		DataDir:    n.IPAM.DataDir,
		ResolvConf: n.IPAM.ResolvConf,
		PrevResult: n.RawPrevResult,
	}
	if c.DataDir == "" {
		c.DataDir = ipam.DefaultDataDir
	}
	if err := c.parseRanges(&n); err != nil {
		return nil, err
	}
	if err := c.parseRequested(&n, cniArgs); err != nil {
		return nil, err
	}
	routes, err := ipamroute.Parse("ipam.routes", n.IPAM.Routes)
	if err != nil {
		return nil, err
	}
	c.Routes = routes
	return c, nil
}

// parseRanges builds the range sets in the reference's order: runtimeConfig.ipRanges first, then the
// single-range keys, then ipam.ranges. The order is the sets' indices, which name the
// last_reserved_ip.<index> files, so it must not change.
func (c *Config) parseRanges(n *NetConf) error {
	var srcs []setSource
	for i, s := range n.RuntimeConfig.IPRanges {
		srcs = append(srcs, setSource{fmt.Sprintf("runtimeConfig.ipRanges[%d]", i), s})
	}
	// Like the reference, the single-range keys count only with a subnet: a stray top-level "gateway"
	// next to "ranges" is ignored, not an error.
	if n.IPAM.Subnet != "" {
		srcs = append(srcs, setSource{"ipam", []RangeConf{n.IPAM.RangeConf}})
	}
	for i, s := range n.IPAM.Ranges {
		srcs = append(srcs, setSource{fmt.Sprintf("ipam.ranges[%d]", i), s})
	}
	if len(srcs) == 0 {
		return conf.Invalid("ipam.ranges", "no range given; use \"ranges\": [[{\"subnet\": \"10.22.0.0/24\"}]] (or the older \"subnet\" key)")
	}
	v4, v6 := 0, 0
	for _, src := range srcs {
		set, err := parseRangeSet(src)
		if err != nil {
			return err
		}
		for si, other := range c.Sets {
			for _, r := range set {
				for _, o := range other {
					if r.Overlaps(o) {
						return conf.Invalid(src.field, "range %s overlaps range %s of %s; range sets must be disjoint", r, o, c.SetFields[si])
					}
				}
			}
		}
		if set[0].Start.Is4() {
			v4++
		} else {
			v6++
		}
		c.Sets = append(c.Sets, set)
		c.SetFields = append(c.SetFields, src.field)
	}
	return ipamconf.CheckPerFamily(n.CNIVersion, "range sets", v4, v6)
}

func parseRangeSet(src setSource) (ipam.RangeSet, error) {
	if len(src.ranges) == 0 {
		return nil, conf.Invalid(src.field, "empty range set; give at least one {\"subnet\": ...}")
	}
	var set ipam.RangeSet
	for j, rc := range src.ranges {
		field := fmt.Sprintf("%s[%d]", src.field, j)
		if src.field == "ipam" {
			field = "ipam" // the single-range form: ipam.subnet, ipam.gateway, ...
		}
		r, err := parseRange(field, rc)
		if err != nil {
			return nil, err
		}
		if len(set) > 0 && r.Start.BitLen() != set[0].Start.BitLen() {
			return nil, conf.Invalid(field+".subnet", "%s is not of the same address family as %s; a range set holds one family", r.Subnet, set[0].Subnet)
		}
		for k, o := range set {
			if r.Overlaps(o) {
				return nil, conf.Invalid(field, "range %s overlaps range %s of %s[%d]; ranges must be disjoint", r, o, src.field, k)
			}
		}
		set = append(set, r)
	}
	return set, nil
}

// minHostBits is what the reference needs of a subnet: a /31 or /32 (/127, /128) has no address left
// once the network address and gateway are set aside.
const minHostBits = 2

// parseRange validates one range and fills in the reference's defaults: gateway and rangeStart the
// subnet's first address after the network address, rangeEnd its last (less the IPv4 broadcast).
func parseRange(field string, rc RangeConf) (ipam.Range, error) {
	if rc.Subnet == "" {
		return ipam.Range{}, conf.Invalid(field+".subnet", "missing; write the range's network as a CIDR, e.g. \"10.22.0.0/24\"")
	}
	subnet, err := ipamconf.ParsePrefix(rc.Subnet)
	if err != nil {
		return ipam.Range{}, conf.Invalid(field+".subnet", "%q is not a CIDR such as \"10.22.0.0/24\" or \"fd22::/64\"", rc.Subnet)
	}
	if subnet != subnet.Masked() {
		return ipam.Range{}, conf.Invalid(field+".subnet", "%s has host bits set; the network address is %s", subnet, subnet.Masked())
	}
	if subnet.Addr().BitLen()-subnet.Bits() < minHostBits {
		return ipam.Range{}, conf.Invalid(field+".subnet", "%s is too small to allocate from; use at most /%d", subnet, subnet.Addr().BitLen()-minHostBits)
	}
	r := ipam.Range{Subnet: subnet, Start: ipam.FirstHost(subnet), End: ipam.LastHost(subnet), Gateway: ipam.FirstHost(subnet)}
	for _, p := range []struct {
		key, val string
		dst      *netip.Addr
	}{{"gateway", rc.Gateway, &r.Gateway}, {"rangeStart", rc.RangeStart, &r.Start}, {"rangeEnd", rc.RangeEnd, &r.End}} {
		if p.val == "" {
			continue
		}
		a, err := parseAddr(p.val)
		if err != nil {
			return ipam.Range{}, conf.Invalid(field+"."+p.key, "%q is not an IP address", p.val)
		}
		if !subnet.Contains(a) {
			return ipam.Range{}, conf.Invalid(field+"."+p.key, "%s is outside subnet %s", a, subnet)
		}
		*p.dst = a
	}
	if r.Start.Compare(r.End) > 0 {
		key := "rangeStart"
		if rc.RangeStart == "" {
			key = "rangeEnd"
		}
		return ipam.Range{}, conf.Invalid(field+"."+key, "rangeStart %s is after rangeEnd %s", r.Start, r.End)
	}
	return r, nil
}

// parseAddr accepts an address, or an address with a prefix length (which the reference ignores).
func parseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if addr, _, ok := strings.Cut(s, "/"); ok {
		if _, err := netip.ParsePrefix(s); err != nil {
			return netip.Addr{}, err
		}
		s = addr
	}
	return ipamconf.ParseAddr(s)
}

// parseRequested collects the addresses the runtime asks for, in the reference's order (CNI_ARGS IP,
// args.cni.ips, runtimeConfig.ips), and assigns each to the range set containing it.
func (c *Config) parseRequested(n *NetConf, cniArgs string) error {
	var asks []requested
	add := func(field, v string) error {
		a, err := parseAddr(v)
		if err != nil {
			return conf.Invalid(field, "%q is not an IP address", v)
		}
		asks = append(asks, requested{a, field})
		return nil
	}
	for _, it := range ipamconf.CNIArgItems(cniArgs, "IP") {
		if err := add(it.Field, it.Value); err != nil {
			return err
		}
	}
	for i, s := range n.Args.CNI.IPs {
		if err := add(fmt.Sprintf("args.cni.ips[%d]", i), s); err != nil {
			return err
		}
	}
	for i, s := range n.RuntimeConfig.IPs {
		if err := add(fmt.Sprintf("runtimeConfig.ips[%d]", i), s); err != nil {
			return err
		}
	}
	c.Requested = make([]requested, len(c.Sets))
	for _, ask := range asks {
		si := -1
		for i, set := range c.Sets {
			if set.Contains(ask.Addr) {
				si = i
				break
			}
		}
		if si < 0 {
			return conf.Invalid(ask.Field, "requested address %s is not in any range (%s)", ask.Addr, c.describeSets())
		}
		set := c.Sets[si]
		if ri, _ := set.RangeFor(ask.Addr); set[ri].Gateway == ask.Addr {
			return conf.Invalid(ask.Field, "requested address %s is the gateway of %s", ask.Addr, set[ri].Subnet)
		}
		switch prev := c.Requested[si]; {
		case !prev.Addr.IsValid():
			c.Requested[si] = ask
		case prev.Addr != ask.Addr:
			return conf.Invalid(ask.Field, "requested address %s and %s (from %s) are both in %s; an attachment gets one address per range set",
				ask.Addr, prev.Addr, prev.Field, c.SetFields[si])
		}
	}
	return nil
}

func (c *Config) describeSets() string {
	parts := make([]string, len(c.Sets))
	for i, s := range c.Sets {
		parts[i] = fmt.Sprintf("%s: %s", c.SetFields[i], s)
	}
	return strings.Join(parts, "; ")
}
