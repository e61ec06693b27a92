package nftables

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/netloom/netloom/pkg/digest"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
)

// The reference plugins' names (pkg/ip/ipmasq_nftables_linux.go). Rules are found by their comment, which
// starts with the hashes below, so each side deletes the other's.
const (
	TableName       = "cni_plugins_masquerade"
	MasqChain       = "masq_checks"
	PostroutingName = "postrouting"
	// commentMax is knftables.CommentLengthMax: the reference cuts its comments there, and its GC compares
	// whole comments, so ours must be cut at the same byte.
	commentMax = 128
	hashLen    = 16
)

// prioritySrcNAT is the postrouting chain's priority, as nft names it: srcnat.
const prioritySrcNAT = 100

var (
	multicastV4 = netip.MustParsePrefix("224.0.0.0/4")
	multicastV6 = netip.MustParsePrefix("ff00::/8")
)

func hash16(s string) string {
	sum := digest.Sum512([]byte(s))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// networkHash starts the comment of every rule of network.
func networkHash(network string) string { return hash16(network) }

// instanceHash starts the comment of every rule of one attachment.
func instanceHash(k firewall.Key) string {
	return networkHash(k.Network) + "-" + hash16(k.IfName+":"+k.ContainerID)
}

// Comment is the comment on k's rules: the hashes that find them, then who owns them in words, for
// `nft list ruleset` readers. It equals the reference's, byte for byte.
func Comment(k firewall.Key) string {
	c := fmt.Sprintf("%s, net: %s, if: %s, id: %s", instanceHash(k),
		strings.ReplaceAll(k.Network, `"`, ""), strings.ReplaceAll(k.IfName, `"`, ""),
		strings.ReplaceAll(k.ContainerID, `"`, ""))
	if len(c) > commentMax {
		c = c[:commentMax]
	}
	return c
}

// masqExprs is `ip saddr A ip daddr != SUBNET masquerade` (ip6 for IPv6) for pod address a: the rule the
// reference adds to masq_checks for each address.
func masqExprs(a netip.Prefix) []expr.Any {
	host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
	e := nftnl.MatchFamily(a.Addr().Is4())
	e = append(e, nftnl.MatchSaddr(host, expr.CmpOpEq)...)
	e = append(e, nftnl.MatchDaddr(a, expr.CmpOpNeq)...)
	return append(e, &expr.Masq{})
}

// postroutingExprs is the content of the postrouting chain: multicast leaves untouched, anything else
// goes on to masq_checks.
func postroutingExprs() [][]expr.Any {
	v4 := append(nftnl.MatchFamily(true), nftnl.MatchDaddr(multicastV4, expr.CmpOpEq)...)
	v6 := append(nftnl.MatchFamily(false), nftnl.MatchDaddr(multicastV6, expr.CmpOpEq)...)
	return [][]expr.Any{
		append(v4, &expr.Verdict{Kind: expr.VerdictReturn}),
		append(v6, &expr.Verdict{Kind: expr.VerdictReturn}),
		{&expr.Verdict{Kind: expr.VerdictGoto, Chain: MasqChain}},
	}
}
