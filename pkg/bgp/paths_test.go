package bgp

import (
	"net/netip"
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
)

func TestPathRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name        string
		a           Announcement
		wantNextHop string
		wantFamily  api.Family_Afi
		wantNHAttr  string // "next-hop" (NEXT_HOP) or "mp-reach" (MP_REACH_NLRI)
	}{
		{
			name:        "IPv4 /32 with next hop",
			a:           Announcement{Prefix: netip.MustParsePrefix("10.244.1.5/32"), NextHop: netip.MustParseAddr("10.77.1.11")},
			wantNextHop: "10.77.1.11", wantFamily: api.Family_AFI_IP, wantNHAttr: "next-hop",
		},
		{
			name:        "IPv4 /24, unspecified next hop",
			a:           Announcement{Prefix: netip.MustParsePrefix("10.244.1.0/24")},
			wantNextHop: "0.0.0.0", wantFamily: api.Family_AFI_IP, wantNHAttr: "next-hop",
		},
		{
			name:        "IPv4 with communities",
			a:           Announcement{Prefix: netip.MustParsePrefix("10.244.2.7/32"), NextHop: netip.MustParseAddr("10.77.1.12"), Communities: []uint32{65000<<16 | 100, 0xFFFFFF01}},
			wantNextHop: "10.77.1.12", wantFamily: api.Family_AFI_IP, wantNHAttr: "next-hop",
		},
		{
			name:        "IPv6 /128, MP_REACH next hop",
			a:           Announcement{Prefix: netip.MustParsePrefix("fd00:1::5/128"), NextHop: netip.MustParseAddr("fd77:1::11")},
			wantNextHop: "fd77:1::11", wantFamily: api.Family_AFI_IP6, wantNHAttr: "mp-reach",
		},
		{
			name:        "IPv6 /64, unspecified next hop",
			a:           Announcement{Prefix: netip.MustParsePrefix("fd00:1::/64")},
			wantNextHop: "::", wantFamily: api.Family_AFI_IP6, wantNHAttr: "mp-reach",
		},
		{
			name:        "IPv6 with communities",
			a:           Announcement{Prefix: netip.MustParsePrefix("fd00:2::9/128"), NextHop: netip.MustParseAddr("fd77:1::12"), Communities: []uint32{0xFFFFFF02}},
			wantNextHop: "fd77:1::12", wantFamily: api.Family_AFI_IP6, wantNHAttr: "mp-reach",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.a.Path()
			if err != nil {
				t.Fatal(err)
			}
			if p.GetFamily().GetAfi() != tc.wantFamily || p.GetFamily().GetSafi() != api.Family_SAFI_UNICAST {
				t.Errorf("family %v, want %v unicast", p.GetFamily(), tc.wantFamily)
			}
			var (
				origin     api.OriginAttribute
				nh         api.NextHopAttribute
				mp         api.MpReachNLRIAttribute
				comm       api.CommunitiesAttribute
				hasOrigin  bool
				nhAttr     string
				gotComms   []uint32
				hasCommAtt bool
			)
			for _, a := range p.GetPattrs() {
				switch {
				case a.MessageIs(&origin):
					hasOrigin = true
				case a.MessageIs(&nh):
					nhAttr = "next-hop"
				case a.MessageIs(&mp):
					nhAttr = "mp-reach"
					if err := a.UnmarshalTo(&mp); err != nil {
						t.Fatal(err)
					}
					if mp.GetFamily().GetAfi() != api.Family_AFI_IP6 || len(mp.GetNlris()) != 1 {
						t.Errorf("MP_REACH_NLRI family %v with %d NLRIs, want IPv6 with 1", mp.GetFamily(), len(mp.GetNlris()))
					}
				case a.MessageIs(&comm):
					hasCommAtt = true
					if err := a.UnmarshalTo(&comm); err != nil {
						t.Fatal(err)
					}
					gotComms = comm.GetCommunities()
				}
			}
			if !hasOrigin {
				t.Error("no ORIGIN attribute")
			}
			if nhAttr != tc.wantNHAttr {
				t.Errorf("next hop carried in %q, want %q", nhAttr, tc.wantNHAttr)
			}
			if hasCommAtt != (len(tc.a.Communities) > 0) || !slices.Equal(gotComms, tc.a.Communities) {
				t.Errorf("communities attribute %v (present %v), want %v", gotComms, hasCommAtt, tc.a.Communities)
			}

			r, err := DecodePath(p)
			if err != nil {
				t.Fatal(err)
			}
			if r.Prefix != tc.a.Prefix {
				t.Errorf("prefix %s, want %s", r.Prefix, tc.a.Prefix)
			}
			if r.NextHop != netip.MustParseAddr(tc.wantNextHop) {
				t.Errorf("next hop %s, want %s", r.NextHop, tc.wantNextHop)
			}
			if !r.Local {
				t.Error("a path built here (no neighbour) decoded as not Local")
			}
		})
	}
}

func TestDecodePathLocal(t *testing.T) {
	for _, tc := range []struct {
		neighbor string
		local    bool
	}{
		{"", true},
		{"<nil>", true}, // what GoBGP puts in NeighborIp for its own paths
		{"10.0.0.1", false},
		{"fd77:1::12", false},
	} {
		t.Run(tc.neighbor, func(t *testing.T) {
			p, err := Announcement{Prefix: netip.MustParsePrefix("10.244.2.0/24"), NextHop: netip.MustParseAddr("10.0.0.1")}.Path()
			if err != nil {
				t.Fatal(err)
			}
			p.NeighborIp = tc.neighbor
			r, err := DecodePath(p)
			if err != nil {
				t.Fatal(err)
			}
			if r.Local != tc.local {
				t.Errorf("NeighborIp %q: Local %v, want %v", tc.neighbor, r.Local, tc.local)
			}
		})
	}
}

func TestDecodePathBadNLRI(t *testing.T) {
	// An NLRI that is not an IP prefix (here: an ORIGIN attribute) is an error, not a zero route.
	p, err := Announcement{Prefix: netip.MustParsePrefix("10.244.2.0/24")}.Path()
	if err != nil {
		t.Fatal(err)
	}
	p.Nlri = p.Pattrs[0]
	if _, err := DecodePath(p); err == nil {
		t.Error("DecodePath accepted a non-prefix NLRI")
	}
}

func TestFamily(t *testing.T) {
	if f := Family(netip.MustParsePrefix("10.0.0.0/8")); f.GetAfi() != api.Family_AFI_IP || f.GetSafi() != api.Family_SAFI_UNICAST {
		t.Errorf("IPv4: %v", f)
	}
	if f := Family(netip.MustParsePrefix("fd00::/8")); f.GetAfi() != api.Family_AFI_IP6 || f.GetSafi() != api.Family_SAFI_UNICAST {
		t.Errorf("IPv6: %v", f)
	}
}

func TestParseCommunity(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint32
		wantErr bool
	}{
		{in: "65000:100", want: 65000<<16 | 100},
		{in: "0:0", want: 0},
		{in: "65535:65535", want: 0xFFFFFFFF},
		{in: "no-export", want: 0xFFFFFF01},
		{in: "NO-EXPORT", want: 0xFFFFFF01},
		{in: "no-advertise", want: 0xFFFFFF02},
		{in: "local-as", want: 0xFFFFFF03},
		{in: "no-export-subconfed", want: 0xFFFFFF03},
		{in: "100", wantErr: true},
		{in: "70000:1", wantErr: true},
		{in: "1:70000", wantErr: true},
		{in: "a:b", wantErr: true},
		{in: "-1:1", wantErr: true},
		{in: "1:2:3", wantErr: true},
		{in: "", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCommunity(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseCommunity(%q) = %#x, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ParseCommunity(%q) = %#x, want %#x", tc.in, got, tc.want)
			}
		})
	}
}
