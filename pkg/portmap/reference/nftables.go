// Package reference reads and removes what the reference portmap plugin (containernetworking/plugins
// v1.9.1) left on a node whose pods it set up, so that netloom's portmap can take over a live node:
// its DEL and GC remove the reference's rules of an attachment, its CHECK accepts them, its ADD takes
// a host port over from a reference pod that no longer exists.
//
// The reference's iptables backend uses the layout netloom's iptables backend writes (pkg/portmap/
// iptables reads and removes it). Its nftables backend (the "backend": "nftables" key) is here: per IP
// family a table `cni_hostport` (families ip and ip6, not inet) with regular chains hostports and
// hostip_hostports that hold one DNAT rule per mapping, and a postrouting chain masquerading with the
// hairpin and localhost masquerade rules, every rule commented with the container ID and nothing else:
//
//	table ip cni_hostport {
//		chain hostports { tcp dport 8080 dnat to 10.22.0.5:80 comment "<container ID>" ... }
//		chain hostip_hostports { ... }
//		chain hostports_all { jump hostip_hostports; jump hostports }
//		chain prerouting { type nat hook prerouting priority dstnat; fib daddr type local jump hostports_all }
//		chain output { type nat hook output priority -100; fib daddr type local jump hostports_all }
//		chain masquerading { type nat hook postrouting priority srcnat
//			ip saddr 10.22.0.5 ip daddr 10.22.0.5 masquerade comment "<container ID>" ... }
//	}
//
// The comment names neither the network nor the interface, so, as the reference's own DEL does,
// removing an attachment's rules removes every rule of its container. The chains and tables stay, as
// the reference leaves them.
package reference

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/portmap"
)

// The reference's nftables names (plugins/meta/portmap/portmap_nftables.go).
const (
	TableName          = "cni_hostport"
	chainHostPorts     = "hostports"
	chainHostIPPorts   = "hostip_hostports"
	chainMasquerading  = "masquerading"
	transportDportOff  = 2
	ipv4DaddrOff       = 16
	ipv4SaddrOff       = 12
	ipv6DaddrOff       = 24
	ipv6SaddrOff       = 8
	registerAddr       = 1
	registerPort       = 2
	protoNumTCP        = unix.IPPROTO_TCP
	protoNumUDP        = unix.IPPROTO_UDP
	protoNumSCTP       = unix.IPPROTO_SCTP
	ruleChainsPerTable = 3
)

// ruleChains are the chains whose rules carry a container ID.
var ruleChains = [ruleChainsPerTable]string{chainHostPorts, chainHostIPPorts, chainMasquerading}

// Tables are the reference's two tables, IPv4 first.
func Tables() []nftnl.Table {
	return []nftnl.Table{{Family: unix.NFPROTO_IPV4, Name: TableName}, {Family: unix.NFPROTO_IPV6, Name: TableName}}
}

// Rule is one rule of the reference's nftables backend, as read back and understood.
type Rule struct {
	Table       nftnl.Table
	Chain       string
	Handle      uint64
	ContainerID string // the rule's comment
	// A DNAT rule forwards Key to Target; a masquerade rule (Masq) masquerades Source to Target's address.
	Masq   bool
	Key    portmap.HostKey
	Source netip.Addr
	Target netip.AddrPort
}

func (r Rule) String() string {
	fam := "ip"
	if r.Table.Family == unix.NFPROTO_IPV6 {
		fam = "ip6"
	}
	if r.Masq {
		return fmt.Sprintf("%s %s %s: masquerade %s to %s (container %s)", fam, r.Table.Name, r.Chain, r.Source, r.Target.Addr(), r.ContainerID)
	}
	return fmt.Sprintf("%s %s %s: %v -> %s (container %s)", fam, r.Table.Name, r.Chain, r.Key, r.Target, r.ContainerID)
}

// List reads every commented rule of the reference's tables. A missing table has none.
func List(c *nftnl.Conn) ([]Rule, error) {
	var out []Rule
	for _, t := range Tables() {
		for _, ch := range ruleChains {
			rules, err := c.Rules(t, ch)
			if err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return nil, err
			}
			for _, r := range rules {
				if r.Comment == "" {
					continue
				}
				exprs, err := r.Expressions()
				if err != nil {
					return nil, err
				}
				out = append(out, parseRule(t, r, exprs))
			}
		}
	}
	return out, nil
}

// parseRule reads what a rule of the reference matches and does, following the registers as the
// reference's rules (compiled by nft) use them.
func parseRule(t nftnl.Table, r nftnl.Rule, exprs []expr.Any) Rule {
	out := Rule{Table: t, Chain: r.Chain, Handle: r.Handle, ContainerID: r.Comment}
	type load struct {
		meta    bool
		base    expr.PayloadBase
		off     uint32
		present bool
	}
	var regs [8]load // what each register holds
	imm := map[uint32][]byte{}
	var daddr netip.Addr
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			if e.Register < uint32(len(regs)) {
				regs[e.Register] = load{meta: e.Key == expr.MetaKeyL4PROTO, present: true}
			}
		case *expr.Payload:
			if e.DestRegister < uint32(len(regs)) {
				regs[e.DestRegister] = load{base: e.Base, off: e.Offset, present: true}
			}
		case *expr.Cmp:
			if e.Op != expr.CmpOpEq || e.Register >= uint32(len(regs)) || !regs[e.Register].present {
				continue
			}
			l := regs[e.Register]
			switch {
			case l.meta && len(e.Data) == 1:
				out.Key.Protocol = protoName(e.Data[0])
			case l.base == expr.PayloadBaseTransportHeader && l.off == transportDportOff && len(e.Data) == 2:
				out.Key.HostPort = binary.BigEndian.Uint16(e.Data)
			case l.base == expr.PayloadBaseNetworkHeader && (l.off == ipv4DaddrOff || l.off == ipv6DaddrOff):
				daddr, _ = netip.AddrFromSlice(e.Data)
			case l.base == expr.PayloadBaseNetworkHeader && (l.off == ipv4SaddrOff || l.off == ipv6SaddrOff):
				out.Source, _ = netip.AddrFromSlice(e.Data)
			}
		case *expr.Immediate:
			imm[e.Register] = e.Data
		case *expr.NAT:
			a, _ := netip.AddrFromSlice(imm[e.RegAddrMin])
			var port uint16
			if p := imm[e.RegProtoMin]; len(p) >= 2 {
				port = binary.BigEndian.Uint16(p)
			}
			out.Target = netip.AddrPortFrom(a, port)
		case *expr.Masq:
			out.Masq = true
		}
	}
	if out.Masq {
		out.Target = netip.AddrPortFrom(daddr, 0)
	} else {
		out.Key.HostIP = daddr
	}
	return out
}

func protoName(n byte) string {
	switch n {
	case protoNumTCP:
		return portmap.TCP
	case protoNumUDP:
		return portmap.UDP
	case protoNumSCTP:
		return portmap.SCTP
	}
	return fmt.Sprintf("protocol %d", n)
}

// RemoveNFTables deletes every rule of the reference's nftables backend that keep says not to keep,
// in one transaction per table. It succeeds when there are none, or no such tables. Another process
// removing some of those rules at the same time (a GC or DEL of another network, or of the same
// attachment) makes the transaction fail as a whole on the rule already gone; the rules are then read
// again and the deletion retried.
func RemoveNFTables(keep func(Rule) bool) ([]Rule, error) {
	c, err := nftnl.Dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	const attempts = 5
	for attempt := 1; ; attempt++ {
		removed, err := removeNFTables(c, keep)
		if err == nil || !errors.Is(err, unix.ENOENT) || attempt == attempts {
			return removed, err
		}
	}
}

func removeNFTables(c *nftnl.Conn, keep func(Rule) bool) ([]Rule, error) {
	rules, err := List(c)
	if err != nil {
		return nil, err
	}
	var removed []Rule
	var b nftnl.Batch
	for _, r := range rules {
		if keep(r) {
			continue
		}
		removed = append(removed, r)
		b.Add(r.Table.DelRule(r.Chain, r.Handle))
	}
	if len(removed) == 0 {
		return nil, nil
	}
	msgs, err := b.Msgs()
	if err != nil {
		return nil, err
	}
	if err := c.Transact(msgs); err != nil {
		return nil, fmt.Errorf("delete the reference portmap's nftables rules: %w", err)
	}
	return removed, nil
}

// RemoveContainer deletes the reference's nftables rules of containerID, as the reference's DEL does.
func RemoveContainer(containerID string) error {
	_, err := RemoveNFTables(func(r Rule) bool { return r.ContainerID != containerID })
	return err
}

// ListNFTables reads the reference's nftables rules on a connection of its own.
func ListNFTables() ([]Rule, error) {
	c, err := nftnl.Dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return List(c)
}

// CheckNFTables says what of ms (one attachment's mappings, normalized as portmap.Mapping) the
// reference's rules of containerID lack: nil when they forward every mapping to the pod. found is false
// when the container has no rule there at all (the attachment is not the reference's nftables one).
// With snat the hairpin masquerade rule of each pod address must be there too.
func CheckNFTables(rules []Rule, containerID string, ms []portmap.Mapping, snat bool) (problems []string, found bool) {
	var mine []Rule
	for _, r := range rules {
		if r.ContainerID == containerID {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return nil, false
	}
	for _, m := range ms {
		want := netip.AddrPortFrom(m.PodIP, m.PodPort)
		if !slices.ContainsFunc(mine, func(r Rule) bool {
			return !r.Masq && r.Key.Protocol == m.Protocol && r.Key.HostPort == m.HostPort && r.Target == want &&
				(r.Key.HostIP == m.HostIP || (!m.HostIP.IsValid() && !r.Key.HostIP.IsValid()))
		}) {
			problems = append(problems, fmt.Sprintf("the reference's nftables table %s has no rule forwarding %v to %s for container %s", TableName, m.Key(), want, containerID))
		}
		if snat && !slices.ContainsFunc(mine, func(r Rule) bool { return r.Masq && r.Source == m.PodIP && r.Target.Addr() == m.PodIP }) {
			problems = append(problems, fmt.Sprintf("the reference's nftables chain %s has no hairpin masquerade rule for %s of container %s", chainMasquerading, m.PodIP, containerID))
		}
	}
	return problems, true
}
