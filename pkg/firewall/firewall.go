// Package firewall defines how netloom plugins ask for packet-filter rules: one small interface per job,
// keyed by the attachment that owns the rules, with a backend per kernel API (firewall/iptables,
// firewall/nftables). The rules are laid out exactly as the reference CNI plugins lay them out, so a node
// can move between the reference plugins and netloom and either side removes what the other installed.
// firewall/ipmasq picks the backend the way the reference does.
package firewall

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
)

// Backend names as the "ipMasqBackend" key of the bridge and the overlays spells them (the reference's
// bridge and ptp spell it the same way).
const (
	BackendIPTables = "iptables"
	BackendNFTables = "nftables"
)

// Key names the attachment that owns a set of rules. Callers pass only validated parts: Network is the
// network's name, ContainerID and IfName come from CNI_CONTAINERID and CNI_IFNAME.
type Key struct {
	Network, ContainerID, IfName string
}

// Attachment returns the part of k that a GC request lists as valid.
func (k Key) Attachment() conf.Attachment {
	return conf.Attachment{ContainerID: k.ContainerID, IfName: k.IfName}
}

func (k Key) String() string { return fmt.Sprintf("%s/%s/%s", k.Network, k.ContainerID, k.IfName) }

// Check refuses a key that could not have come from a validated configuration. It is a last guard: the
// parts end up in rule comments and chain names, and an empty part would make one attachment's rules
// collide with another's.
func (k Key) Check() error {
	for _, p := range []struct{ name, v string }{
		{"network", k.Network}, {"container ID", k.ContainerID}, {"interface name", k.IfName},
	} {
		if p.v == "" {
			return fmt.Errorf("firewall key %q: empty %s", k.String(), p.name)
		}
		if strings.ContainsRune(p.v, 0) {
			return fmt.Errorf("firewall key %q: %s contains NUL", k.String(), p.name)
		}
	}
	return nil
}

// Masquerader installs source NAT for pod addresses: traffic from a pod to anything outside its own subnet
// (multicast excepted) leaves with the node's address.
type Masquerader interface {
	// Ensure masquerades traffic from each address (the pod's, with its prefix length giving the local
	// subnet not to masquerade) to anywhere outside that subnet except multicast. Idempotent: running it
	// again with other addresses replaces k's rules for those addresses' IP families.
	Ensure(k Key, addrs []netip.Prefix) error
	// Remove deletes k's rules; it succeeds when they are already gone and needs no addresses, so a DEL
	// without prevResult still cleans up.
	Remove(k Key) error
	// Check returns an error saying what is missing when k's rules for addrs are not all there.
	Check(k Key, addrs []netip.Prefix) error
	// GC removes the rules of every attachment of network that is not in valid.
	GC(network string, valid map[conf.Attachment]bool) error
}

// HintedRemover is a Masquerader whose Remove costs less when told the addresses k's rules were most
// likely made for (a DEL's prevResult). It removes every rule of k all the same, whatever addresses they
// match, and a wrong or empty hint only costs what Remove costs.
type HintedRemover interface {
	RemoveHinted(k Key, addrs []netip.Prefix) error
}

// SplitFamilies returns addrs split into IPv4 and IPv6, each without duplicates, in their original order.
// A 4-in-6 address counts as IPv6, as the kernel sees it. It fails on an invalid prefix.
func SplitFamilies(addrs []netip.Prefix) (v4, v6 []netip.Prefix, err error) {
	seen := make(map[netip.Prefix]bool, len(addrs))
	for i, a := range addrs {
		if !a.IsValid() {
			return nil, nil, fmt.Errorf("address %d: invalid prefix %q", i, a.String())
		}
		if seen[a] {
			continue
		}
		seen[a] = true
		if a.Addr().Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return v4, v6, nil
}

// KeyFor is the key of the attachment a CNI command is about, in the network called network.
func KeyFor(network string, args *plugin.Args) Key {
	return Key{Network: network, ContainerID: args.ContainerID, IfName: args.IfName}
}
