// Package ipamconf holds what the IPAM plugins (host-local, static) read alike: the keys a runtime adds
// to their network configuration, CNI_ARGS lists, the address parsers that accept what the reference's
// do, and the per-family limit of old result versions. Their "ipam" sections differ and stay theirs.
package ipamconf

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/version"

	"github.com/netloom/netloom/pkg/conf"
)

// Net is what an IPAM plugin reads of the network configuration besides its "ipam" section and
// runtimeConfig: IPAM plugins receive the whole network config, so other keys are ignored. Embed it.
type Net struct {
	CNIVersion    string         `json:"cniVersion"`
	Name          string         `json:"name"`
	RawPrevResult map[string]any `json:"prevResult,omitempty"`
	Args          struct {
		CNI struct {
			IPs []string `json:"ips,omitempty"` // the runtime's args.cni.ips
		} `json:"cni"`
	} `json:"args"`
}

// Item is one item of a comma-separated CNI_ARGS value, with the name messages give it.
type Item struct {
	Field string // "CNI_ARGS IP" for a lone item, "CNI_ARGS IP (item 1)" in a list
	Value string
}

// CNIArgItems splits the CNI_ARGS value of key (IP, GATEWAY) at its commas; nil when key is not set.
func CNIArgItems(cniArgs, key string) []Item {
	v, ok := conf.CNIArg(cniArgs, key)
	if !ok {
		return nil
	}
	parts := strings.Split(v, ",")
	items := make([]Item, len(parts))
	for i, s := range parts {
		items[i] = Item{Field: "CNI_ARGS " + key, Value: s}
		if len(parts) > 1 {
			items[i].Field = fmt.Sprintf("CNI_ARGS %s (item %d)", key, i)
		}
	}
	return items
}

// ParsePrefix accepts what net.ParseCIDR does (the reference's parser), host bits kept. An IPv4-mapped
// IPv6 prefix (::ffff:10.0.0.0/120) is the IPv4 prefix (10.0.0.0/24); one shorter than /96 covers more
// than IPv4 and is refused.
func ParsePrefix(s string) (netip.Prefix, error) {
	ip, ipnet, err := net.ParseCIDR(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, err
	}
	a, _ := netip.AddrFromSlice(ip)
	ones, bits := ipnet.Mask.Size()
	if a.Is4In6() {
		if bits == 128 {
			if ones < 96 {
				return netip.Prefix{}, fmt.Errorf("%s is an IPv4-mapped prefix shorter than /96", strings.TrimSpace(s))
			}
			ones -= 96
		}
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, ones), nil
}

// ParseAddr accepts an address without prefix length or zone; an IPv4-mapped one is the IPv4 address.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has a zone", s)
	}
	return a.Unmap(), nil
}

// CheckPerFamily refuses more than one of what (addresses, range sets) per family for the results of
// CNI 0.2.0 and older, which carry only one address of each.
func CheckPerFamily(cniVersion, what string, v4, v6 int) error {
	if v4 <= 1 && v6 <= 1 {
		return nil
	}
	if ok, _ := version.GreaterThanOrEqualTo(cniVersion, "0.3.0"); ok {
		return nil
	}
	return conf.Invalid("cniVersion", "%q results carry one address per family, and %d IPv4 and %d IPv6 %s are configured; use 0.3.0 or later", cniVersion, v4, v6, what)
}
