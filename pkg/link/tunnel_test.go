package link

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestTunnelMismatch(t *testing.T) {
	vxSpec := TunnelSpec{Kind: KindVXLAN, Name: "nlvx.1", Local: netip.MustParseAddr("10.77.1.11"), Underlay: 7, MTU: 1450, VNI: 1, Port: 4789,
		MAC: net.HardwareAddr{0x0e, 0x4c, 10, 77, 1, 11}}
	ipSpec := TunnelSpec{Kind: KindIPIP, Name: "nlipip", Local: netip.MustParseAddr("10.77.1.11"), Underlay: 7, MTU: 1480}

	// vx and ipt are links as the kernel reports a matching device; each case changes one thing.
	vx := func(f func(*netlink.Vxlan)) netlink.Link {
		a := netlink.NewLinkAttrs()
		a.Name, a.MTU, a.HardwareAddr = "nlvx.1", 1450, vxSpec.MAC
		l := &netlink.Vxlan{LinkAttrs: a, VxlanId: 1, VtepDevIndex: 7, SrcAddr: net.ParseIP("10.77.1.11"), Port: 4789, UDPCSum: true}
		if f != nil {
			f(l)
		}
		return l
	}
	ipt := func(f func(*netlink.Iptun)) netlink.Link {
		a := netlink.NewLinkAttrs()
		a.Name, a.MTU, a.ParentIndex = "nlipip", 1480, 7 // the kernel reports the underlay as IFLA_LINK
		l := &netlink.Iptun{LinkAttrs: a, Local: net.ParseIP("10.77.1.11").To4(), Ttl: 64, PMtuDisc: 1}
		if f != nil {
			f(l)
		}
		return l
	}
	for _, tc := range []struct {
		name string
		link netlink.Link
		spec TunnelSpec
		want string // "" for a match, else a substring of the reason
	}{
		{"vxlan matches", vx(nil), vxSpec, ""},
		{"vxlan 4-byte local matches", vx(func(l *netlink.Vxlan) { l.SrcAddr = l.SrcAddr.To4() }), vxSpec, ""},
		{"vxlan other MTU and MAC still match", vx(func(l *netlink.Vxlan) { l.MTU, l.HardwareAddr = 1500, net.HardwareAddr{2, 0, 0, 0, 0, 1} }), vxSpec, ""},
		{"vxlan unspecified group matches", vx(func(l *netlink.Vxlan) { l.Group = net.IPv4zero }), vxSpec, ""},
		{"vxlan spec, veth link", &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nlvx.1"}}, vxSpec, "it is a veth device, not vxlan"},
		{"vxlan spec, ipip link", ipt(nil), vxSpec, "it is a ipip device, not vxlan"},
		{"ipip spec, vxlan link", vx(nil), ipSpec, "it is a vxlan device, not ipip"},
		{"vxlan wrong VNI", vx(func(l *netlink.Vxlan) { l.VxlanId = 2 }), vxSpec, "its VNI is 2, not 1"},
		{"vxlan wrong port", vx(func(l *netlink.Vxlan) { l.Port = 8472 }), vxSpec, "its port is 8472, not 4789"},
		{"vxlan wrong local", vx(func(l *netlink.Vxlan) { l.SrcAddr = net.ParseIP("10.77.1.12") }), vxSpec, "its local address is 10.77.1.12, not 10.77.1.11"},
		{"vxlan no local", vx(func(l *netlink.Vxlan) { l.SrcAddr = nil }), vxSpec, "its local address is <nil>, not 10.77.1.11"},
		{"vxlan wrong underlay", vx(func(l *netlink.Vxlan) { l.VtepDevIndex = 3 }), vxSpec, "its underlay device is ifindex 3, not 7"},
		{"vxlan learning", vx(func(l *netlink.Vxlan) { l.Learning = true }), vxSpec, "it learns source MACs"},
		{"vxlan flow-based", vx(func(l *netlink.Vxlan) { l.FlowBased = true }), vxSpec, "it is a flow-based (external) device"},
		{"vxlan group", vx(func(l *netlink.Vxlan) { l.Group = net.ParseIP("239.1.1.1") }), vxSpec, "it floods to 239.1.1.1"},
		{"vxlan noudpcsum", vx(func(l *netlink.Vxlan) { l.UDPCSum = false }), vxSpec, "it sends no outer UDP checksums (noudpcsum)"},
		{"vxlan udp6zerocsumtx", vx(func(l *netlink.Vxlan) { l.UDP6ZeroCSumTx = true }), vxSpec, "udp6zerocsumtx"},
		{"vxlan udp6zerocsumrx", vx(func(l *netlink.Vxlan) { l.UDP6ZeroCSumRx = true }), vxSpec, "udp6zerocsumrx"},
		{"ipip matches", ipt(nil), ipSpec, ""},
		{"ipip 16-byte local matches", ipt(func(l *netlink.Iptun) { l.Local = net.ParseIP("10.77.1.11") }), ipSpec, ""},
		{"ipip unspecified remote matches", ipt(func(l *netlink.Iptun) { l.Remote = net.IPv4zero }), ipSpec, ""},
		{"ipip wrong local", ipt(func(l *netlink.Iptun) { l.Local = net.ParseIP("10.77.1.12") }), ipSpec, "its local address is 10.77.1.12, not 10.77.1.11"},
		{"ipip remote set", ipt(func(l *netlink.Iptun) { l.Remote = net.ParseIP("10.77.1.12") }), ipSpec, "it is a point-to-point tunnel to 10.77.1.12"},
		{"ipip flow-based", ipt(func(l *netlink.Iptun) { l.FlowBased = true }), ipSpec, "it is a flow-based (external) device"},
		{"ipip wrong underlay", ipt(func(l *netlink.Iptun) { l.ParentIndex = 0 }), ipSpec, "its underlay device is ifindex 0, not 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TunnelMismatch(tc.link, tc.spec)
			if tc.want == "" && got != "" {
				t.Errorf("TunnelMismatch = %q, want a match", got)
			}
			if tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("TunnelMismatch = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTunnelSpecLink checks the device a spec creates: one TunnelMismatch accepts, with learning off.
func TestTunnelSpecLink(t *testing.T) {
	for _, s := range []TunnelSpec{
		{Kind: KindVXLAN, Name: "nlvx.5", Local: netip.MustParseAddr("10.77.1.11"), Underlay: 4, MTU: 1450, VNI: 5, Port: 4789, MAC: net.HardwareAddr{0x0e, 0x4c, 10, 77, 1, 11}},
		{Kind: KindVXLAN, Name: "nlvx.5", Local: netip.MustParseAddr("2001:db8::11"), Underlay: 4, MTU: 1430, VNI: 5, Port: 4789},
		{Kind: KindIPIP, Name: "nlipip", Local: netip.MustParseAddr("10.77.1.11"), Underlay: 4, MTU: 1480},
	} {
		l := s.link()
		if ip, ok := l.(*netlink.Iptun); ok {
			ip.ParentIndex = int(ip.Link) // as the kernel reports the device it made: IFLA_LINK
		}
		if why := TunnelMismatch(l, s); why != "" {
			t.Errorf("%s %s: the link it creates mismatches: %s", s.Kind, s.Local, why)
		}
		if a := l.Attrs(); a.Name != s.Name || a.MTU != s.MTU {
			t.Errorf("%s: attrs %+v", s.Kind, a)
		}
		if v, ok := l.(*netlink.Vxlan); ok && (v.Learning || v.HardwareAddr.String() != s.MAC.String()) {
			t.Errorf("vxlan link: learning %v MAC %s", v.Learning, v.HardwareAddr)
		}
		if v, ok := l.(*netlink.Vxlan); ok && (!v.UDPCSum || v.UDP6ZeroCSumTx || v.UDP6ZeroCSumRx) {
			t.Errorf("vxlan link %s: udpcsum %v udp6zerocsumtx %v udp6zerocsumrx %v, want outer checksums on both families",
				s.Local, v.UDPCSum, v.UDP6ZeroCSumTx, v.UDP6ZeroCSumRx)
		}
	}
}
