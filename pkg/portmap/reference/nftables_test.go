package reference

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/portmap"
)

// The expressions nft compiles the reference's rules into (nft --debug=netlink, nftables 1.0.6).
var (
	dnatAny = []expr.Any{ // tcp dport 8080 dnat to 10.9.0.5:80
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x1f, 0x90}},
		&expr.Immediate{Register: 1, Data: []byte{10, 9, 0, 5}},
		&expr.Immediate{Register: 2, Data: []byte{0, 80}},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2},
	}
	dnatHostIP = []expr.Any{ // ip daddr 192.0.2.1 udp dport 8081 dnat to 10.9.0.5:81
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{192, 0, 2, 1}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{17}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x1f, 0x91}},
		&expr.Immediate{Register: 1, Data: []byte{10, 9, 0, 5}},
		&expr.Immediate{Register: 2, Data: []byte{0, 81}},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2},
	}
	masqHairpin = []expr.Any{ // ip saddr 10.9.0.5 ip daddr 10.9.0.5 masquerade
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 9, 0, 5}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 9, 0, 5}},
		&expr.Masq{},
	}
)

func TestParseRule(t *testing.T) {
	tb := Tables()[0]
	pod := netip.MustParseAddr("10.9.0.5")
	for _, tc := range []struct {
		name  string
		exprs []expr.Any
		want  Rule
	}{
		{"all addresses", dnatAny, Rule{Key: portmap.HostKey{Protocol: portmap.TCP, HostPort: 8080}, Target: netip.AddrPortFrom(pod, 80)}},
		{"one host address", dnatHostIP, Rule{Key: portmap.HostKey{Protocol: portmap.UDP, HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 8081}, Target: netip.AddrPortFrom(pod, 81)}},
		{"hairpin masquerade", masqHairpin, Rule{Masq: true, Source: pod, Target: netip.AddrPortFrom(pod, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseRule(tb, nftnl.Rule{Chain: chainHostPorts, Handle: 7, Comment: "ctr1"}, tc.exprs)
			tc.want.Table, tc.want.Chain, tc.want.Handle, tc.want.ContainerID = tb, chainHostPorts, 7, "ctr1"
			if got != tc.want {
				t.Errorf("parseRule = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCheckNFTables(t *testing.T) {
	tb := Tables()[0]
	rules := []Rule{
		parseRule(tb, nftnl.Rule{Chain: chainHostPorts, Comment: "ctr1"}, dnatAny),
		parseRule(tb, nftnl.Rule{Chain: chainMasquerading, Comment: "ctr1"}, masqHairpin),
		parseRule(tb, nftnl.Rule{Chain: chainHostPorts, Comment: "ctr2"}, dnatHostIP),
	}
	m := func(port uint16, to string) portmap.Mapping {
		return portmap.Mapping{Protocol: portmap.TCP, HostPort: port, PodIP: netip.MustParseAddr(to), PodPort: 80}
	}
	for _, tc := range []struct {
		name     string
		id       string
		ms       []portmap.Mapping
		snat     bool
		found    bool
		problems []string
	}{
		{"the reference's pod", "ctr1", []portmap.Mapping{m(8080, "10.9.0.5")}, true, true, nil},
		{"another address", "ctr1", []portmap.Mapping{m(8080, "10.9.0.6")}, false, true, []string{"no rule forwarding tcp/8080 (all addresses) to 10.9.0.6:80"}},
		{"hairpin rule missing", "ctr2", []portmap.Mapping{{Protocol: portmap.UDP, HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 8081, PodIP: netip.MustParseAddr("10.9.0.5"), PodPort: 81}}, true, true,
			[]string{"no hairpin masquerade rule for 10.9.0.5"}},
		{"not the reference's", "ctr3", []portmap.Mapping{m(8080, "10.9.0.5")}, true, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems, found := CheckNFTables(rules, tc.id, tc.ms, tc.snat)
			if found != tc.found || len(problems) != len(tc.problems) {
				t.Fatalf("CheckNFTables = %q, %v; want %d problems, found %v", problems, found, len(tc.problems), tc.found)
			}
			for i, p := range tc.problems {
				if !strings.Contains(problems[i], p) {
					t.Errorf("problem %d = %q, want it to say %q", i, problems[i], p)
				}
			}
		})
	}
}
