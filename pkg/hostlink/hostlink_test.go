package hostlink

import (
	"errors"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestResolveMTU(t *testing.T) {
	for _, tc := range []struct {
		req, master, want int
		above             bool
	}{
		{req: 0, master: 1500, want: 1500},
		{req: 1400, master: 1500, want: 1400},
		{req: 1500, master: 1500, want: 1500},
		{req: 9000, master: 1500, above: true},
	} {
		got, err := ResolveMTU(tc.req, tc.master)
		if tc.above {
			if !errors.Is(err, ErrMTUAboveMaster) {
				t.Errorf("ResolveMTU(%d, %d) = %d, %v; want ErrMTUAboveMaster", tc.req, tc.master, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ResolveMTU(%d, %d) = %d, %v; want %d", tc.req, tc.master, got, err, tc.want)
		}
	}
}

func TestIsDefault(t *testing.T) {
	_, v4def, _ := net.ParseCIDR("0.0.0.0/0")
	_, v6def, _ := net.ParseCIDR("::/0")
	_, v4net, _ := net.ParseCIDR("10.0.0.0/8")
	for _, tc := range []struct {
		dst    *net.IPNet
		family int
		want   bool
	}{
		{nil, netlink.FAMILY_V4, true},
		{nil, netlink.FAMILY_V6, true},
		{v4def, netlink.FAMILY_V4, true},
		{v6def, netlink.FAMILY_V6, true},
		{v4net, netlink.FAMILY_V4, false},
	} {
		if got := isDefault(netlink.Route{Dst: tc.dst}, tc.family); got != tc.want {
			t.Errorf("isDefault(%v, %d) = %v, want %v", tc.dst, tc.family, got, tc.want)
		}
	}
}
