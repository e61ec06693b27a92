package iptables

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netloom/netloom/pkg/digest"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/xtables"
)

// The reference portmap's names (plugins/meta/portmap/portmap_iptables.go). They must never change: a node
// moving between the reference plugin and netloom finds the other's chains by these names.
const (
	natTable          = "nat"
	prerouting        = "PREROUTING"
	output            = "OUTPUT"
	postrouting       = "POSTROUTING"
	TopLevelDNATChain = "CNI-HOSTPORT-DNAT"
	SetMarkChain      = "CNI-HOSTPORT-SETMARK"
	MarkMasqChain     = "CNI-HOSTPORT-MASQ"
	// oldTopLevelSNATChain and its CNI-SN-<hash> chains were made by reference releases before 0.7;
	// Remove still clears them, as the reference's DEL does.
	oldTopLevelSNATChain = "CNI-HOSTPORT-SNAT"
	dnChainPrefix        = "CNI-DN-"

	setMarkComment  = "CNI portfwd masquerade mark"
	masqJumpComment = "CNI portfwd requiring masquerade"

	// multiportMax is how many ports one `-m multiport --dports` match takes.
	multiportMax = 15
	// commentMax is the longest comment the comment match takes (XT_MAX_COMMENT_LEN less the NUL).
	commentMax = 255
)

var (
	localhostV4 = netip.MustParsePrefix("127.0.0.0/8")
	localhostV6 = netip.MustParsePrefix("::1/128")
)

// DNATChain is the nat chain holding the DNAT rules of one container on one network: the reference's
// CNI-DN-<hash>. The hash leaves out the interface, so the interfaces of one container on one network
// share the chain; each rule's comment says which interface it belongs to.
func DNATChain(network, containerID string) string { return chainName("DN-", network, containerID) }

func oldSNATChain(network, containerID string) string { return chainName("SN-", network, containerID) }

// chainName is the reference's name for a container's chain: "CNI-", the kind, then the hex SHA-512 of
// network and container ID, cut at iptables' 28 characters. (The reference's helper lives in a package
// that also initialises an nftables library at start, which cost every portmap process memory.)
func chainName(kind, network, containerID string) string {
	const maxLen = 28
	sum := digest.Sum512([]byte(network + containerID))
	return ("CNI-" + kind + hex.EncodeToString(sum[:]))[:maxLen]
}

// Comment is the comment on each of k's rules: the reference's `dnat name: "<net>" id: "<id>"`, then the
// interface, which GC needs to tell the interfaces of one container apart.
func Comment(k firewall.Key) string {
	c := commentStart + k.Network + commentID + k.ContainerID + commentIf + strconv.Quote(k.IfName)
	if len(c) > commentMax {
		// As the reference trims; such a comment no longer parses and the chain name alone tells the owner.
		c = c[:commentMax-3] + "..."
	}
	return c
}

// owner is the attachment a comment names. The reference's comments name no interface (hasIf false).
type owner struct {
	network, containerID, ifName string
	hasIf                        bool
}

func (o owner) String() string {
	if !o.hasIf {
		return o.network + "/" + o.containerID
	}
	return o.network + "/" + o.containerID + "/" + o.ifName
}

// is tells whether o may be k: a comment without interface matches any of the container's interfaces.
func (o owner) is(k firewall.Key) bool {
	return o.network == k.Network && o.containerID == k.ContainerID && (!o.hasIf || o.ifName == k.IfName)
}

func (o owner) chain() string { return DNATChain(o.network, o.containerID) }

const (
	commentStart = `dnat name: "`
	commentID    = `" id: "`
	commentIf    = `" if: `
)

// parseComment reads the owner out of a comment that Comment or the reference made; ok is false for any
// other comment, and for one whose parts would not print back to it. It runs for every CNI rule of the
// nat table on each Add, so it avoids regular expressions.
func parseComment(c string) (o owner, ok bool) {
	rest, found := strings.CutPrefix(c, commentStart)
	if !found {
		return owner{}, false
	}
	// The network name may hold anything, the container ID no quote: the last `" id: "` ends the name.
	i := strings.LastIndex(rest, commentID)
	if i < 0 {
		return owner{}, false
	}
	o.network, rest = rest[:i], rest[i+len(commentID):]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return owner{}, false
	}
	o.containerID, rest = rest[:j], rest[j:]
	if rest == `"` {
		return o, true
	}
	quoted, found := strings.CutPrefix(rest, commentIf)
	if !found {
		return owner{}, false
	}
	ifName, err := strconv.Unquote(quoted)
	if err != nil {
		return owner{}, false
	}
	o.ifName, o.hasIf = ifName, true
	return o, Comment(firewall.Key{Network: o.network, ContainerID: o.containerID, IfName: ifName}) == c
}

func hostPrefix(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

// layout is what one attachment needs in one IP family: the rules of its share of the DN chain, in order,
// and its jumps from CNI-HOSTPORT-DNAT. Jumps for mappings of one host address go to the top of
// CNI-HOSTPORT-DNAT and the others to the bottom, so a mapping of one address wins over another
// attachment's all-addresses mapping of the same port.
type layout struct {
	chain       string
	rules       []xtables.Rule
	front, back []xtables.Rule
}

func (l layout) jumps() []xtables.Rule { return append(slices.Clone(l.front), l.back...) }

// desired computes k's layout for ms, which are normalized (see normalize) and all of one family.
// Conditions go on the jumps, as in the reference.
func desired(k firewall.Key, ms []portmap.Mapping, o portmap.Options, v6 bool) layout {
	l := layout{chain: DNATChain(k.Network, k.ContainerID)}
	if len(ms) == 0 {
		return l
	}
	comment := Comment(k)
	setMark := SetMarkChain
	if o.ExternalSetMarkChain != "" {
		setMark = o.ExternalSetMarkChain
	}
	localhost := localhostV4
	if v6 {
		localhost = localhostV6
	}
	conditions := o.ConditionsV4
	if v6 {
		conditions = o.ConditionsV6
	}
	// Mappings of one address come first in the chain too, for when k has both kinds on one port.
	ordered := slices.Clone(ms)
	slices.SortStableFunc(ordered, func(a, b portmap.Mapping) int {
		return boolInt(!a.HostIP.IsValid()) - boolInt(!b.HostIP.IsValid())
	})
	for _, m := range ordered {
		match := func(src string) xtables.Rule {
			var r xtables.Rule
			if src != "" {
				r = append(r, "-s", src)
			}
			if m.HostIP.IsValid() {
				r = append(r, "-d", hostPrefix(m.HostIP))
			}
			return append(r, "-p", m.Protocol, "-m", m.Protocol, "--dport", strconv.Itoa(int(m.HostPort)),
				"-m", "comment", "--comment", comment)
		}
		if o.SNAT {
			if o.MasqAll {
				// The reference's -s 0.0.0.0/0, which iptables prints as no source match at all.
				l.rules = append(l.rules, append(match(""), "-j", setMark))
			} else {
				l.rules = append(l.rules,
					append(match(m.PodSubnet.Masked().String()), "-j", setMark),
					append(match(localhost.String()), "-j", setMark))
			}
		}
		l.rules = append(l.rules, append(match(""), "-j", "DNAT", "--to-destination",
			netip.AddrPortFrom(m.PodIP, m.PodPort).String()))
	}
	// One jump per protocol and up to multiportMax ports, protocols sorted as the reference does.
	type group struct {
		specific bool
		proto    string
	}
	ports := map[group][]string{}
	for _, m := range ordered {
		g := group{m.HostIP.IsValid(), m.Protocol}
		if p := strconv.Itoa(int(m.HostPort)); !slices.Contains(ports[g], p) {
			ports[g] = append(ports[g], p)
		}
	}
	for _, specific := range []bool{true, false} {
		for _, proto := range []string{portmap.SCTP, portmap.TCP, portmap.UDP} {
			list := ports[group{specific, proto}]
			for start := 0; start < len(list); start += multiportMax {
				chunk := list[start:min(start+multiportMax, len(list))]
				j := xtables.Rule{"-p", proto, "-m", "comment", "--comment", comment,
					"-m", "multiport", "--dports", strings.Join(chunk, ",")}
				j = append(append(j, conditions...), "-j", l.chain).Canonical()
				if specific {
					l.front = append(l.front, j)
				} else {
					l.back = append(l.back, j)
				}
			}
		}
	}
	return l
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Skeleton rules: the shared chains' entries and contents, as the reference makes them.
func dnatEntry() xtables.Rule {
	return xtables.Rule{"-m", "addrtype", "--dst-type", "LOCAL", "-j", TopLevelDNATChain}
}

func markDef(bit int) string {
	v := uint32(1) << uint(bit)
	return fmt.Sprintf("%#x/%#x", v, v)
}

func setMarkRule(bit int) xtables.Rule {
	return xtables.Rule{"-m", "comment", "--comment", setMarkComment, "-j", "MARK", "--set-xmark", markDef(bit)}
}

func masqRule(bit int) xtables.Rule {
	return xtables.Rule{"-m", "mark", "--mark", markDef(bit), "-j", "MASQUERADE"}
}

func masqEntry() xtables.Rule {
	return xtables.Rule{"-m", "comment", "--comment", masqJumpComment, "-j", MarkMasqChain}
}
