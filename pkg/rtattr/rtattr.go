// Package rtattr finds attributes in rtnetlink messages that vishvananda/netlink does not decode for
// us: a bridge port's settings in IFLA_LINKINFO, a link's per-family configuration in IFLA_AF_SPEC, a
// netconf reply's values.
package rtattr

import (
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Value is the value of the first attribute of attrs whose type is typ, nested or not (the
// NLA_F_NESTED and NLA_F_NET_BYTEORDER flags are ignored), or nil.
func Value(attrs []syscall.NetlinkRouteAttr, typ uint16) []byte {
	if i := index(attrs, typ); i >= 0 {
		return attrs[i].Value
	}
	return nil
}

// Find parses b as a run of attributes and returns the value of the first one of type typ (as Value
// does); false when b does not parse or holds none.
func Find(b []byte, typ uint16) ([]byte, bool) {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return nil, false
	}
	i := index(attrs, typ)
	if i < 0 {
		return nil, false
	}
	return attrs[i].Value, true
}

// index is the position of the first attribute of attrs whose type is typ, or -1.
func index(attrs []syscall.NetlinkRouteAttr, typ uint16) int {
	for i, a := range attrs {
		if a.Attr.Type&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == typ {
			return i
		}
	}
	return -1
}
