package reference

import (
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/xtables"
)

// topLevelDNATChain is the reference iptables backend's chain that every pod's forwarding hangs off.
const topLevelDNATChain = "CNI-HOSTPORT-DNAT"

// IPTablesMayHold tells, without running iptables, whether the reference's iptables backend (or
// netloom's, which writes the same chains) may have rules on this node: the nft-based iptables has a
// rule in chain CNI-HOSTPORT-DNAT of table ip nat or ip6 nat, or the legacy nat table is loaded at all. A node
// using only nftables backends answers false in one netlink dump, so an nftables DEL does not pay for
// an iptables-save.
func IPTablesMayHold() bool {
	for _, f := range xtables.Families() {
		if loaded, err := xtables.LegacyTableLoaded(f, "nat"); err == nil && loaded {
			return true
		}
	}
	c, err := nftnl.Dial()
	if err != nil {
		return false
	}
	defer c.Close()
	for _, fam := range []byte{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6} {
		// The chain stays after its last pod (neither suite deletes it): only a jump in it means a pod.
		rules, err := c.Rules(nftnl.Table{Family: fam, Name: "nat"}, topLevelDNATChain)
		if err == nil && len(rules) > 0 {
			return true
		}
	}
	return false
}
