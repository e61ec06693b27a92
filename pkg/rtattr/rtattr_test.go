package rtattr

import (
	"bytes"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func TestFindAndValue(t *testing.T) {
	nested := nl.NewRtAttr(unix.IFLA_AF_SPEC|unix.NLA_F_NESTED, nil)
	nested.AddRtAttr(unix.AF_INET, []byte{1, 2, 3, 4})
	var b []byte
	b = append(b, nl.NewRtAttr(unix.IFLA_MTU, []byte{0xdc, 0x05, 0, 0}).Serialize()...)
	b = append(b, nested.Serialize()...)
	b = append(b, nl.NewRtAttr(unix.IFLA_MTU, []byte{9, 9, 9, 9}).Serialize()...)
	for _, tc := range []struct {
		name string
		in   []byte
		typ  uint16
		want []byte
		ok   bool
	}{
		{"first of two", b, unix.IFLA_MTU, []byte{0xdc, 0x05, 0, 0}, true},
		{"nested flag ignored", b, unix.IFLA_AF_SPEC, nested.Serialize()[4:], true},
		{"absent", b, unix.IFLA_IFNAME, nil, false},
		{"empty", nil, unix.IFLA_MTU, nil, false},
		{"truncated", b[:3], unix.IFLA_MTU, nil, false},
	} {
		got, ok := Find(tc.in, tc.typ)
		if ok != tc.ok || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: Find = %x, %v; want %x, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := Value(attrs, unix.IFLA_MTU); !bytes.Equal(got, []byte{0xdc, 0x05, 0, 0}) {
		t.Errorf("Value(IFLA_MTU) = %x", got)
	}
	if got := Value([]syscall.NetlinkRouteAttr{}, unix.IFLA_MTU); got != nil {
		t.Errorf("Value of no attributes = %x, want nil", got)
	}
}
