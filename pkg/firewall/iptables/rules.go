package iptables

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netloom/netloom/pkg/digest"
	"github.com/netloom/netloom/pkg/xtables"
)

// The names below are the reference plugins' (pkg/ip/ipmasq_iptables_linux.go, pkg/utils): a node that
// moves between the reference bridge plugin and netloom must find the same chains and comments.
const (
	natTable    = "nat"
	postrouting = "POSTROUTING"
	chainPrefix = "CNI-"
	// chainNameLen is the length of every chain the reference masquerade code creates: the prefix and 24
	// hex digits of a SHA-512 hash, short enough for iptables' 28-character chain names.
	chainNameLen = 28
)

// isChainName tells whether chain is one ChainName makes: the prefix and 24 lower-case hex digits. The
// portmap plugin's chains (CNI-DN-..., CNI-HOSTPORT-...) never are, not being pure hex after the prefix.
func isChainName(chain string) bool {
	hex, ok := strings.CutPrefix(chain, chainPrefix)
	return ok && len(chain) == chainNameLen && strings.IndexFunc(hex, func(c rune) bool {
		return !('0' <= c && c <= '9' || 'a' <= c && c <= 'f')
	}) < 0
}

var (
	multicastV4 = netip.MustParsePrefix("224.0.0.0/4")
	multicastV6 = netip.MustParsePrefix("ff00::/8")
)

// ChainName is the nat chain holding the masquerade rules of one container on one network. Like the
// reference, it leaves out the interface name, so two interfaces of one container on the same network share
// a chain.
func ChainName(network, containerID string) string {
	sum := digest.Sum512([]byte(network + containerID))
	return (chainPrefix + hex.EncodeToString(sum[:]))[:chainNameLen]
}

// Comment is the comment on every rule of ChainName(network, containerID). It is the reference's, byte for
// byte: the reference deletes its POSTROUTING jump by full rule spec, comment included.
func Comment(network, containerID string) string {
	return fmt.Sprintf("name: %q id: %q", network, containerID)
}

// parseComment inverts Comment; ok is false for a comment Comment cannot have made.
// (Not fmt.Sscanf: its scanner is about 20 KiB of code that every plugin masquerading would carry.)
func parseComment(c string) (network, containerID string, ok bool) {
	rest, ok := strings.CutPrefix(c, "name: ")
	if !ok {
		return "", "", false
	}
	network, rest, ok = cutQuoted(rest)
	if !ok {
		return "", "", false
	}
	if rest, ok = strings.CutPrefix(rest, " id: "); !ok {
		return "", "", false
	}
	if containerID, rest, ok = cutQuoted(rest); !ok || rest != "" {
		return "", "", false
	}
	return network, containerID, Comment(network, containerID) == c
}

// cutQuoted unquotes the Go string literal s starts with and returns the rest of s after it.
func cutQuoted(s string) (unquoted, rest string, ok bool) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", false
	}
	unquoted, err = strconv.Unquote(q)
	return unquoted, s[len(q):], err == nil
}

// layout is what one attachment needs in one IP family: its chain's rules in order, and one POSTROUTING
// jump per pod address.
type layout struct {
	chain string
	rules []xtables.Rule // in chain, in this order
	jumps []xtables.Rule // in POSTROUTING
}

// desired computes the layout for addrs, which are all of one family and free of duplicates. The chain
// first accepts (leaves alone) traffic to each address's own subnet, then masquerades everything else
// except multicast. (The reference appends each subnet's ACCEPT after the MASQUERADE when a pod has two
// addresses of one family, so its second subnet gets masqueraded; netloom puts every ACCEPT first.)
func desired(network, containerID string, addrs []netip.Prefix) layout {
	l := layout{chain: ChainName(network, containerID)}
	comment := Comment(network, containerID)
	withComment := func(s ...string) xtables.Rule {
		return append(xtables.Rule(s), "-m", "comment", "--comment", comment, "-j")
	}
	var subnets []netip.Prefix
	for _, a := range addrs {
		if subnet := a.Masked(); !slices.Contains(subnets, subnet) {
			subnets = append(subnets, subnet)
			l.rules = append(l.rules, append(withComment("-d", subnet.String()), "ACCEPT"))
		}
		host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
		l.jumps = append(l.jumps, append(withComment("-s", host.String()), l.chain))
	}
	if len(addrs) > 0 {
		mcast := multicastV4
		if addrs[0].Addr().Is6() {
			mcast = multicastV6
		}
		l.rules = append(l.rules, append(withComment("!", "-d", mcast.String()), "MASQUERADE"))
	}
	return l
}
