package sysctl

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/rtattr"
)

// Why some keys go over rtnetlink: every lookup under /proc/sys/net walks a dcache chain holding one
// entry per network namespace that has used the same directory, so each read or write costs in
// proportion to the pods on the node (0.45 ms per read with 1,000 pod namespaces on kernel 6.18,
// against 35 µs for /proc/sys/kernel/ostype). rtnetlink reports the same values at a constant cost: a
// link's IPv4 and IPv6 per-device settings (RTM_GETLINK's IFLA_AF_SPEC), and the forwarding switches
// (RTM_GETNETCONF). It also writes IPv4 per-device settings (RTM_SETLINK), which the kernel stores as
// the sysctl handler does; only the keys in ipv4Plain go that way, those whose handler does nothing
// more. Whatever rtnetlink cannot answer (another key, a link it does not know, an old kernel) goes to
// /proc/sys as before, so the errors stay those of the file.

// ipv4Index are IPv4 per-device settings by name: their index in IFLA_INET_CONF plus one
// (IPV4_DEVCONF_*, linux/ip.h).
var ipv4Index = map[string]int{
	"forwarding":     1,
	"proxy_arp":      3,
	"rp_filter":      8,
	"arp_announce":   18,
	"arp_ignore":     19,
	"arp_accept":     21,
	"arp_notify":     22,
	"route_localnet": 26,
}

// ipv4Plain are the IPv4 settings whose sysctl handler only stores the value (route_localnet flushes
// the route cache when it goes from on to off, so only an "on" goes over rtnetlink).
var ipv4Plain = map[string]bool{"arp_notify": true, "arp_ignore": true, "arp_announce": true, "route_localnet": true}

// ipv6Index are IPv6 per-device settings by name: their index in IFLA_INET6_CONF (DEVCONF_*,
// linux/ipv6.h). rtnetlink reads them but cannot write them.
var ipv6Index = map[string]int{
	"forwarding":        0,
	"accept_ra":         3,
	"autoconf":          5,
	"optimistic_dad":    23,
	"disable_ipv6":      26,
	"accept_dad":        27,
	"use_optimistic":    34,
	"keep_addr_on_down": 42,
	"enhanced_dad":      46,
}

// RTM_GETNETCONF's attributes (linux/netconf.h).
const (
	netconfIfindex    = 1 // NETCONFA_IFINDEX
	netconfForwarding = 2 // NETCONFA_FORWARDING
	netconfIfindexAll = -1
	rtextSkipStats    = 1 << 3 // RTEXT_FILTER_SKIP_STATS: the link's counters are not wanted
)

// rtnlKey is a key rtnetlink can answer: the family's per-device setting of link (or, with link "all"
// and forwarding, the family's switch).
type rtnlKey struct {
	family int // unix.AF_INET or unix.AF_INET6
	link   string
	param  string
	index  int
}

// parseRtnlKey tells whether key is one rtnetlink answers, and which.
func parseRtnlKey(key string) (rtnlKey, bool) {
	key = strings.Trim(key, "/")
	if key == "net/ipv4/ip_forward" {
		return rtnlKey{family: unix.AF_INET, link: "all", param: "forwarding"}, true
	}
	parts := strings.Split(key, "/")
	if len(parts) != 5 || parts[0] != "net" || parts[2] != "conf" || parts[3] == "" {
		return rtnlKey{}, false
	}
	k := rtnlKey{link: parts[3], param: parts[4]}
	var ok bool
	switch parts[1] {
	case "ipv4":
		k.family = unix.AF_INET
		k.index, ok = ipv4Index[k.param]
	case "ipv6":
		k.family = unix.AF_INET6
		k.index, ok = ipv6Index[k.param]
	}
	switch {
	case !ok:
		return rtnlKey{}, false
	case k.link == "all" && k.param == "forwarding":
		return k, true
	case k.link == "all" || k.link == "default": // RTM_GETNETCONF reports only a few of their settings
		return rtnlKey{}, false
	}
	return k, true
}

// errUnanswered says rtnetlink did not report the key: /proc/sys is asked instead.
var errUnanswered = errors.New("not reported over rtnetlink")

// getRtnl reads k over rtnetlink.
func getRtnl(k rtnlKey) (string, error) {
	if k.link == "all" {
		return netconfForwardingAll(k.family)
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(k.link)))
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextSkipStats)))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil || len(msgs) != 1 || len(msgs[0]) < unix.SizeofIfInfomsg {
		return "", errUnanswered
	}
	conf, ok := linkConf(msgs[0][unix.SizeofIfInfomsg:], k.family)
	if !ok {
		return "", errUnanswered
	}
	i := k.index
	if k.family == unix.AF_INET {
		i-- // IFLA_INET_CONF starts at IPV4_DEVCONF_FORWARDING, which is 1
	}
	if (i+1)*4 > len(conf) {
		return "", errUnanswered
	}
	// Both families' settings are ints, printed as such by /proc/sys (an IPv6 one may be -1).
	return strconv.Itoa(int(int32(binary.NativeEndian.Uint32(conf[i*4:])))), nil
}

// linkConf returns family's IFLA_INET_CONF or IFLA_INET6_CONF out of an RTM_NEWLINK's attributes.
func linkConf(attrs []byte, family int) ([]byte, bool) {
	spec, ok := rtattr.Find(attrs, unix.IFLA_AF_SPEC)
	if !ok {
		return nil, false
	}
	fam, ok := rtattr.Find(spec, uint16(family))
	if !ok {
		return nil, false
	}
	typ := uint16(unix.IFLA_INET_CONF)
	if family == unix.AF_INET6 {
		typ = unix.IFLA_INET6_CONF
	}
	return rtattr.Find(fam, typ)
}

// netconfMsg is struct netconfmsg, padded to the netlink alignment.
type netconfMsg struct{ family uint8 }

func (m netconfMsg) Len() int          { return 4 }
func (m netconfMsg) Serialize() []byte { return []byte{m.family, 0, 0, 0} }

// netconfForwardingAll reads family's forwarding switch (net/ipv4/ip_forward, net/ipv6/conf/all/forwarding).
func netconfForwardingAll(family int) (string, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETNETCONF, unix.NLM_F_ACK)
	req.AddData(netconfMsg{family: uint8(family)})
	all := int32(netconfIfindexAll)
	req.AddData(nl.NewRtAttr(netconfIfindex, binary.NativeEndian.AppendUint32(nil, uint32(all))))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNETCONF)
	if err != nil || len(msgs) != 1 || len(msgs[0]) < 4 {
		return "", errUnanswered
	}
	v, ok := rtattr.Find(msgs[0][4:], netconfForwarding)
	if !ok || len(v) < 4 {
		return "", errUnanswered
	}
	return strconv.FormatUint(uint64(binary.NativeEndian.Uint32(v)), 10), nil
}

// setRtnl writes k over rtnetlink when it is an IPv4 per-device setting of ipv4Plain and value a
// number it may go that way; otherwise, or when the kernel refuses, errUnanswered.
func setRtnl(k rtnlKey, value string) error {
	if k.family != unix.AF_INET || k.link == "all" || !ipv4Plain[k.param] {
		return errUnanswered
	}
	// What /proc/sys takes and rtnetlink would not (a negative number) or the reverse (above the int
	// range) goes to the file, which then gives its own answer.
	v, err := strconv.ParseUint(strings.TrimSpace(value), 10, 31)
	if err != nil || (k.param == "route_localnet" && v == 0) {
		return errUnanswered
	}
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(k.link)))
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC|unix.NLA_F_NESTED, nil)
	inet := spec.AddRtAttr(unix.AF_INET|unix.NLA_F_NESTED, nil)
	conf := inet.AddRtAttr(unix.IFLA_INET_CONF|unix.NLA_F_NESTED, nil)
	conf.AddRtAttr(k.index, nl.Uint32Attr(uint32(v)))
	req.AddData(spec)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return errUnanswered
	}
	return nil
}
