// Package ipamroute parses the "routes" an IPAM section configures (host-local's and static's
// ipam.routes) into the routes of a CNI result, with errors that name the offending key.
package ipamroute

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
)

// Conf is one entry of "routes", returned in the result as given (the keys of types.Route).
type Conf struct {
	Dst      string `json:"dst"`
	GW       string `json:"gw,omitempty"`
	MTU      int    `json:"mtu,omitempty"`
	AdvMSS   int    `json:"advmss,omitempty"`
	Priority int    `json:"priority,omitempty"`
	Table    *int   `json:"table,omitempty"`
	Scope    *int   `json:"scope,omitempty"`
}

// Parse validates rcs, the list at the JSON path field ("ipam.routes"), and returns them as result
// routes. A dst must be a CIDR; an IPv4-mapped IPv6 dst is its IPv4 prefix; a gw must be an address of
// dst's family. Errors are code 7 naming "field[i].dst" or "field[i].gw".
func Parse(field string, rcs []Conf) ([]*types.Route, error) {
	var out []*types.Route
	for i, rc := range rcs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if rc.Dst == "" {
			return nil, conf.Invalid(f+".dst", "missing; write the destination as a CIDR, e.g. \"0.0.0.0/0\"")
		}
		ip, dst, err := net.ParseCIDR(strings.TrimSpace(rc.Dst))
		if err != nil {
			return nil, conf.Invalid(f+".dst", "%q is not a CIDR such as \"0.0.0.0/0\"", rc.Dst)
		}
		r := &types.Route{Dst: net.IPNet{IP: ip, Mask: dst.Mask}, MTU: rc.MTU, AdvMSS: rc.AdvMSS, Priority: rc.Priority, Table: rc.Table, Scope: rc.Scope}
		if ip4 := ip.To4(); ip4 != nil {
			ones, bits := dst.Mask.Size()
			if bits == 128 {
				if ones < 96 {
					return nil, conf.Invalid(f+".dst", "%q is an IPv4-mapped prefix shorter than /96; write the IPv4 prefix itself", rc.Dst)
				}
				r.Dst.Mask = net.CIDRMask(ones-96, 32)
			}
			r.Dst.IP = ip4
		}
		if rc.GW != "" {
			gw, err := netip.ParseAddr(strings.TrimSpace(rc.GW))
			if err != nil || gw.Zone() != "" {
				return nil, conf.Invalid(f+".gw", "%q is not an IP address", rc.GW)
			}
			gw = gw.Unmap()
			if gw.Is4() != (r.Dst.IP.To4() != nil) {
				return nil, conf.Invalid(f+".gw", "%s is not of the family of dst %s", gw, rc.Dst)
			}
			r.GW = net.IP(gw.AsSlice())
		}
		out = append(out, r)
	}
	return out, nil
}
