// Package bgp is what netloomd and the bgp-route plugin share: the BGP paths they announce (one pod
// address or pod CIDR with a next hop and communities) in GoBGP's API types, a client of that API (which
// netloomd serves on a unix socket and a stock gobgpd on TCP), and the records bgp-route keeps of what
// each attachment announced.
package bgp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"
)

// Announcement is one path this node originates.
type Announcement struct {
	Prefix      netip.Prefix `json:"prefix"`
	NextHop     netip.Addr   `json:"nextHop"` // invalid: the speaker's own address towards each peer
	Communities []uint32     `json:"communities,omitempty"`
}

func (a Announcement) String() string {
	s := a.Prefix.String()
	if a.NextHop.IsValid() {
		s += " next hop " + a.NextHop.String()
	}
	return s
}

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// Family is the API family of prefixes like p.
func Family(p netip.Prefix) *api.Family {
	if p.Addr().Is4() {
		return familyV4
	}
	return familyV6
}

// Path encodes a as a GoBGP API path: origin IGP, the next hop (NEXT_HOP for IPv4, MP_REACH_NLRI for
// IPv6) and the communities.
func (a Announcement) Path() (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: a.Prefix.Addr().String(), PrefixLen: uint32(a.Prefix.Bits())})
	if err != nil {
		return nil, err
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0})
	if err != nil {
		return nil, err
	}
	attrs := []*anypb.Any{origin}
	nh := a.NextHop
	var nhAttr *anypb.Any
	if a.Prefix.Addr().Is4() {
		if !nh.IsValid() {
			nh = netip.IPv4Unspecified()
		}
		nhAttr, err = anypb.New(&api.NextHopAttribute{NextHop: nh.String()})
	} else {
		if !nh.IsValid() {
			nh = netip.IPv6Unspecified()
		}
		nhAttr, err = anypb.New(&api.MpReachNLRIAttribute{Family: familyV6, NextHops: []string{nh.String()}, Nlris: []*anypb.Any{nlri}})
	}
	if err != nil {
		return nil, err
	}
	attrs = append(attrs, nhAttr)
	if len(a.Communities) > 0 {
		c, err := anypb.New(&api.CommunitiesAttribute{Communities: a.Communities})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, c)
	}
	return &api.Path{Family: Family(a.Prefix), Nlri: nlri, Pattrs: attrs}, nil
}

// Route is a path as a route: where to and through which next hop, and whether this speaker
// originated it (then it is not installed in the kernel).
type Route struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
	Local   bool
}

// DecodePath reads the destination and next hop of an API path.
func DecodePath(p *api.Path) (Route, error) {
	var r Route
	var pfx api.IPAddressPrefix
	if err := p.GetNlri().UnmarshalTo(&pfx); err != nil {
		return r, fmt.Errorf("path NLRI: %w", err)
	}
	a, err := netip.ParseAddr(pfx.Prefix)
	if err != nil {
		return r, fmt.Errorf("path NLRI %q: %w", pfx.Prefix, err)
	}
	r.Prefix = netip.PrefixFrom(a, int(pfx.PrefixLen)).Masked()
	for _, attr := range p.GetPattrs() {
		var nh api.NextHopAttribute
		var mp api.MpReachNLRIAttribute
		switch {
		case attr.MessageIs(&nh):
			if err := attr.UnmarshalTo(&nh); err == nil {
				r.NextHop, _ = netip.ParseAddr(nh.NextHop)
			}
		case attr.MessageIs(&mp):
			if err := attr.UnmarshalTo(&mp); err == nil && len(mp.NextHops) > 0 {
				r.NextHop, _ = netip.ParseAddr(mp.NextHops[0])
			}
		}
	}
	// A path this speaker originated has no neighbour.
	_, fromPeer := netip.ParseAddr(p.GetNeighborIp())
	r.Local = fromPeer != nil
	return r, nil
}

// ParseCommunity reads a standard community: "65000:100" or a well-known name.
func ParseCommunity(s string) (uint32, error) {
	switch strings.ToLower(s) {
	case "no-export":
		return 0xFFFFFF01, nil
	case "no-advertise":
		return 0xFFFFFF02, nil
	case "no-export-subconfed", "local-as":
		return 0xFFFFFF03, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("%q is not a community; want ASN:VALUE, e.g. \"65000:100\", or no-export, no-advertise, local-as", s)
	}
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a community; both halves of ASN:VALUE are 0-65535", s)
	}
	return uint32(h)<<16 | uint32(l), nil
}
