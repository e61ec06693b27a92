package link

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

// vxlanOffloads are the offloads that keep pod traffic through the tunnel in 64 KiB super-packets
// (segmented, if at all, by the underlay's NIC) and aggregated on receive: the kernel turns them on for
// a VXLAN device, and the test makes sure nothing in EnsureTunnel turns them off.
var vxlanOffloads = []string{"rx-gro", "tx-generic-segmentation", "tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-checksum-ip-generic"}

// TestEnsureTunnelVXLANChecksumsAndOffloads creates VXLAN devices over an IPv4 and an IPv6 underlay and
// checks what the kernel made: outer UDP checksums on (udpcsum, no zero checksums over IPv6) and the
// segmentation, checksum and GRO offloads on. A device made with noudpcsum, which cannot be changed in
// place, is replaced.
func TestEnsureTunnelVXLANChecksumsAndOffloads(t *testing.T) {
	harness.RequireRoot(t)
	n := harness.NewNetNS(t, "tun")
	n.Run(t, "ip", "link", "add", "under0", "type", "veth", "peer", "name", "under1") // this kernel may lack dummy
	n.Run(t, "ip", "link", "set", "under0", "up")
	n.Run(t, "ip", "addr", "add", "10.77.1.11/24", "dev", "under0")
	n.Run(t, "ip", "addr", "add", "fd77:1::11/64", "dev", "under0", "nodad")
	var underlay int
	if err := n.Do(func() error {
		l, err := ByName("under0")
		underlay = l.Attrs().Index
		return err
	}); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, name string) {
		t.Helper()
		var vx *netlink.Vxlan
		if err := n.Do(func() error {
			l, err := ByName(name)
			vx, _ = l.(*netlink.Vxlan)
			return err
		}); err != nil || vx == nil {
			t.Fatalf("%s: %v (link %T)", name, err, vx)
		}
		if !vx.UDPCSum || vx.UDP6ZeroCSumTx || vx.UDP6ZeroCSumRx {
			t.Errorf("%s: udpcsum %v udp6zerocsumtx %v udp6zerocsumrx %v, want outer checksums on\n%s",
				name, vx.UDPCSum, vx.UDP6ZeroCSumTx, vx.UDP6ZeroCSumRx, n.Run(t, "ip", "-d", "link", "show", name))
		}
		if off := harness.MissingOffloads(t, n, name, vxlanOffloads...); len(off) > 0 {
			t.Errorf("%s: offloads not on: %s", name, strings.Join(off, ", "))
		}
	}

	for _, tc := range []struct {
		name, local string
		mtu         int
	}{{"nlvx.4", "10.77.1.11", 1450}, {"nlvx.6", "fd77:1::11", 1430}} {
		t.Run(tc.name, func(t *testing.T) {
			spec := TunnelSpec{Kind: KindVXLAN, Name: tc.name, Local: netip.MustParseAddr(tc.local), Underlay: underlay, MTU: tc.mtu, VNI: 7, Port: 4789}
			if err := n.Do(func() error { _, _, err := EnsureTunnel(spec); return err }); err != nil {
				t.Fatalf("EnsureTunnel: %v", err)
			}
			check(t, tc.name)
		})
	}

	t.Run("noudpcsum device replaced", func(t *testing.T) {
		n.Run(t, "ip", "link", "add", "nlvx.8", "type", "vxlan", "id", "8", "local", "10.77.1.11", "dev", "under0",
			"dstport", "4789", "nolearning", "noudpcsum")
		spec := TunnelSpec{Kind: KindVXLAN, Name: "nlvx.8", Local: netip.MustParseAddr("10.77.1.11"), Underlay: underlay, MTU: 1450, VNI: 8, Port: 4789}
		var why string
		if err := n.Do(func() (err error) { _, why, err = EnsureTunnel(spec); return err }); err != nil {
			t.Fatalf("EnsureTunnel: %v", err)
		}
		if !strings.Contains(why, "noudpcsum") {
			t.Errorf("EnsureTunnel over a noudpcsum device: recreated %q, want the reason to name noudpcsum", why)
		}
		check(t, "nlvx.8")
	})
}
