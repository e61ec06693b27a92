package nftables

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/digest"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/portmap"
)

// Names of the table and its objects. Everything lives in one table, so `nft delete table inet
// netloom_portmap` undoes the whole backend.
const (
	TableName    = "netloom_portmap"
	tableComment = "netloom portmap"

	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainHostports   = "hostports"
	chainPostrouting = "postrouting"

	// setAttachments holds one record per attachment: owner ID -> digest of everything it owns.
	setAttachments = "attachments"
)

// Element lifetimes in a timed table (see Retirement in the package comment): every element of its
// maps is added to expire after elemLifetime, which it never reaches, and one with less than
// retiringWithin left was retired.
const (
	elemLifetime   = 100 * 365 * 24 * time.Hour
	retiringWithin = time.Minute
)

// Hook priorities, as nft names them: dstnat for prerouting and output, srcnat for postrouting.
const (
	priorityDstNAT = -100
	prioritySrcNAT = 100
)

// commentMax bounds every comment: `nft -f` refuses longer ones when it reads a listing back (the
// kernel would take 253 bytes).
const commentMax = 128

// ownerLen is the size of an owner ID: 8 bytes of the network's hash, 8 of the attachment's.
const ownerLen = 16

// owner identifies an attachment in map data. Its hex form, "<network hash>-<attachment hash>", is the
// hash the reference plugins and pkg/firewall put in their comments for the same attachment.
type owner [ownerLen]byte

func hash8(s string) [8]byte {
	sum := digest.Sum512([]byte(s))
	return [8]byte(sum[:8])
}

func networkHash(network string) [8]byte { return hash8(network) }

func ownerOf(k firewall.Key) owner {
	var o owner
	n, a := networkHash(k.Network), hash8(k.IfName+":"+k.ContainerID)
	copy(o[:8], n[:])
	copy(o[8:], a[:])
	return o
}

func (o owner) String() string { return hex.EncodeToString(o[:8]) + "-" + hex.EncodeToString(o[8:]) }

// comment is what every element of k carries: the owner hash, then who that is in words.
func comment(k firewall.Key) string {
	c := ownerOf(k).String() + " " + strings.ReplaceAll(k.String(), `"`, "")
	if len(c) > commentMax {
		c = c[:commentMax]
	}
	return c
}

// ownerName is the readable part of an element comment: "network/containerID/ifname", or the whole
// comment when it is not one of ours.
func ownerName(comment string) string {
	if h, rest, ok := strings.Cut(comment, " "); ok && len(h) == 2*ownerLen+1 {
		return rest
	}
	if comment == "" {
		return "an attachment whose element has no comment"
	}
	return comment
}

// fam is an IP family of the inet table.
type fam int

const (
	ipv4 fam = iota
	ipv6
)

// families lists both, in the order the table handles them.
func families() [2]fam { return [2]fam{ipv4, ipv6} }

func famOf(a netip.Addr) fam {
	if a.Is4() {
		return ipv4
	}
	return ipv6
}

func (f fam) String() string { return [...]string{"ipv4", "ipv6"}[f] }

func (f fam) digit() string { return [...]string{"4", "6"}[f] }

func (f fam) nfproto() byte { return [...]byte{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6}[f] }

func (f fam) addrType() nftnl.Datatype {
	return [...]nftnl.Datatype{nftnl.TypeIPAddr, nftnl.TypeIP6Addr}[f]
}

func (f fam) addrLen() uint32 { return f.addrType().Len() }

// everything is the source range that masqAll masquerades.
func (f fam) everything() netip.Prefix {
	return [...]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}[f]
}

// loopback is the source the host's own connections to a mapping come from.
func (f fam) loopback() netip.Prefix {
	return [...]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}[f]
}

// Maps of one family. dnatN maps (protocol, host address, host port) to (pod address, pod port);
// dnatN_any the same without the host address, for mappings on every local address. ownerN and
// ownerN_any have the same keys and map them to the owner: the kernel refuses to add an element whose
// key exists with other data, so a host port taken by another attachment fails the whole transaction,
// even when both would forward to the same place.
//
// Masquerading is keyed by pod address too, in hash maps only (see the package comment): masqallN
// holds the pods whose every DNATed connection is masqueraded, and masqN_L holds "network . pod" pairs
// for sources in that /L network (the pod's subnet, or loopback), one map and one postrouting chain per
// prefix length in use.
func dnatSet(f fam, anyAddr bool) string  { return "dnat" + f.digit() + anySuffix(anyAddr) }
func ownerSet(f fam, anyAddr bool) string { return "owner" + f.digit() + anySuffix(anyAddr) }
func masqAllSet(f fam) string             { return "masqall" + f.digit() }

// masqLen is a masquerade map for sources in a network of one prefix length.
type masqLen struct {
	f    fam
	bits int
}

func (m masqLen) name() string { return fmt.Sprintf("masq%s_%d", m.f.digit(), m.bits) }

// parseMasqLen reads a masqN_L name back.
func parseMasqLen(name string) (masqLen, bool) {
	for _, f := range families() {
		rest, ok := strings.CutPrefix(name, "masq"+f.digit()+"_")
		if !ok {
			continue
		}
		bits, err := strconv.Atoi(rest)
		m := masqLen{f, bits}
		if err != nil || bits < 1 || bits > int(f.addrLen())*8 || m.name() != name {
			return masqLen{}, false
		}
		return m, true
	}
	return masqLen{}, false
}

func anySuffix(anyAddr bool) string {
	if anyAddr {
		return "_any"
	}
	return ""
}

// setDef is one named map of the table.
type setDef struct {
	name      string
	key, data []nftnl.Datatype // concatenated
	comment   string
}

// setDefs are the maps every ADD needs; masqLen maps come and go with prefix lengths in use.
func setDefs() []setDef {
	proto, port, ownerT := nftnl.TypeInetProto, nftnl.TypeInetService, nftnl.TypeIP6Addr
	var out []setDef
	for _, f := range families() {
		a := f.addrType()
		out = append(out,
			setDef{name: dnatSet(f, false), key: []nftnl.Datatype{proto, a, port}, data: []nftnl.Datatype{a, port},
				comment: "host port on one " + f.String() + " address -> pod"},
			setDef{name: dnatSet(f, true), key: []nftnl.Datatype{proto, port}, data: []nftnl.Datatype{a, port},
				comment: "host port on every local " + f.String() + " address -> pod"},
			setDef{name: ownerSet(f, false), key: []nftnl.Datatype{proto, a, port}, data: []nftnl.Datatype{ownerT},
				comment: "owner of each " + dnatSet(f, false) + " key"},
			setDef{name: ownerSet(f, true), key: []nftnl.Datatype{proto, port}, data: []nftnl.Datatype{ownerT},
				comment: "owner of each " + dnatSet(f, true) + " key"},
			setDef{name: masqAllSet(f), key: []nftnl.Datatype{a}, data: []nftnl.Datatype{ownerT},
				comment: "pod -> owner: masquerade every connection to its host ports"},
		)
	}
	return append(out, setDef{name: setAttachments, key: []nftnl.Datatype{ownerT}, data: []nftnl.Datatype{ownerT},
		comment: "owner -> digest of what it owns"})
}

func (m masqLen) setDef() setDef {
	a := m.f.addrType()
	return setDef{name: m.name(), key: []nftnl.Datatype{a, a}, data: []nftnl.Datatype{nftnl.TypeIP6Addr},
		comment: fmt.Sprintf("/%d network . pod -> owner: masquerade connections from that network to the pod's host ports", m.bits)}
}

// regSize is the width of an nf_tables register: every field of a concatenation starts on one.
const regSize = 4

// natHook makes a chain a NAT base chain.
func natHook(hook uint32, priority int32) *nftnl.Hook {
	return &nftnl.Hook{Type: "nat", Num: hook, Priority: priority}
}

func chainDefs() []nftnl.Chain {
	return []nftnl.Chain{
		{Name: chainPrerouting, Hook: natHook(unix.NF_INET_PRE_ROUTING, priorityDstNAT)},
		{Name: chainOutput, Hook: natHook(unix.NF_INET_LOCAL_OUT, priorityDstNAT)},
		{Name: chainHostports},
		{Name: chainPostrouting, Hook: natHook(unix.NF_INET_POST_ROUTING, prioritySrcNAT)},
	}
}

// chainDef is a postrouting chain of its own for the masqLen map: with one rule per chain, concurrent
// ADDs that bring in a new prefix length each flush it and add the rule, and one copy remains.
func (m masqLen) chainDef() nftnl.Chain {
	return nftnl.Chain{Name: m.name(), Hook: natHook(unix.NF_INET_POST_ROUTING, prioritySrcNAT)}
}

func (m masqLen) rule() ruleDef {
	return ruleDef{chain: m.name(), comment: fmt.Sprintf("masquerade %s sources in the pod's /%d", m.f, m.bits), exprs: masqExprs(m)}
}

// ruleDef is one rule of the skeleton. The comment names its role: Add compares the comments of the
// installed rules with these to tell whether the skeleton is intact, in one small dump. A rule whose
// exprs are nil is written by `nft` from the conditions' text.
type ruleDef struct {
	chain, comment string
	exprs          []expr.Any
}

// hookComment names a prerouting or output rule; it carries a hash of the conditions, so a change of
// conditions shows as a different skeleton.
func hookComment(f fam, conditions []string) string {
	c := "to local " + f.String() + " addresses"
	if len(conditions) > 0 {
		sum := digest.Sum256([]byte(strings.Join(conditions, " ")))
		c += ", conditions " + hex.EncodeToString(sum[:6])
	}
	return c
}

// viaNFT tells whether the hook rules come from `nft`: conditions are nft expressions in text.
func viaNFT(o portmap.Options) bool { return len(o.ConditionsV4)+len(o.ConditionsV6) > 0 }

func conditionsOf(o portmap.Options, f fam) []string {
	if f == ipv4 {
		return o.ConditionsV4
	}
	return o.ConditionsV6
}

// skeletonRules is the content of every chain, in order.
func skeletonRules(o portmap.Options) []ruleDef {
	var out []ruleDef
	for _, ch := range []string{chainPrerouting, chainOutput} {
		for _, f := range families() {
			r := ruleDef{chain: ch, comment: hookComment(f, conditionsOf(o, f))}
			if !viaNFT(o) {
				r.exprs = hookExprs(f)
			}
			out = append(out, r)
		}
	}
	for _, f := range families() {
		out = append(out,
			ruleDef{chain: chainHostports, comment: "host ports on one " + f.String() + " address", exprs: dnatExprs(f, false)},
			ruleDef{chain: chainHostports, comment: "host ports on every " + f.String() + " address", exprs: dnatExprs(f, true)},
		)
	}
	for _, f := range families() {
		out = append(out, ruleDef{chain: chainPostrouting, comment: "masquerade every " + f.String() + " source", exprs: masqAllExprs(f)})
	}
	return out
}

// nftScript writes the prerouting and output rules with the conditions, for `nft -f -`: nft compiles
// the conditions' text, which netloom does not parse. It adds the table and the chains the rules need
// (a no-op for those that exist), so it works on an empty ruleset too.
func nftScript(o portmap.Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "add table inet %s { comment %q; }\n", TableName, tableComment)
	fmt.Fprintf(&b, "add chain inet %s %s\n", TableName, chainHostports)
	for _, ch := range chainDefs()[:2] {
		fmt.Fprintf(&b, "add chain inet %s %s { type nat hook %s priority %d; policy accept; }\n", TableName, ch.Name, ch.Name, ch.Hook.Priority)
	}
	for _, ch := range []string{chainPrerouting, chainOutput} {
		fmt.Fprintf(&b, "flush chain inet %s %s\n", TableName, ch)
	}
	for _, ch := range []string{chainPrerouting, chainOutput} {
		for _, f := range families() {
			cond := strings.Join(conditionsOf(o, f), " ")
			if cond != "" {
				cond += " "
			}
			fmt.Fprintf(&b, "add rule inet %s %s meta nfproto %s %sfib daddr type local jump %s comment %q\n",
				TableName, ch, f, cond, chainHostports, hookComment(f, conditionsOf(o, f)))
		}
	}
	return b.String()
}

// checkConditions refuses conditions that could end the rule they go into and start another command.
func checkConditions(o portmap.Options) error {
	for _, f := range families() {
		for i, c := range conditionsOf(o, f) {
			if strings.ContainsAny(c, ";\n\r#") {
				return fmt.Errorf("conditionsV%s[%d] %q: an nftables expression may not contain ';', '#' or a line break", f.digit(), i, c)
			}
		}
	}
	return nil
}

// Registers as nft allocates them: reg 1 is the first 16-byte register; 9, 10, ... are the 4-byte
// registers after its first four bytes; 2 is the second 16-byte register (4-byte register 12).
const (
	reg1  = 1
	reg2  = 2
	reg9  = 9
	reg10 = 10
	reg13 = 13
)

// rtnLocal is the fib address type of a local address (RTN_LOCAL).
const rtnLocal = 2

// Offsets in the headers.
const (
	ipv4SrcOffset = 12
	ipv4DstOffset = 16
	ipv6SrcOffset = 8
	ipv6DstOffset = 24
	thDportOffset = 2
	portLen       = 2
)

// matchNFProto is `meta nfproto ipvN`.
func matchNFProto(f fam) []expr.Any { return nftnl.MatchFamily(f == ipv4) }

// hookExprs is `meta nfproto ipvN fib daddr type local jump hostports`.
func hookExprs(f fam) []expr.Any {
	return append(matchNFProto(f),
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: hostU32(rtnLocal)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: chainHostports},
	)
}

// hostU32 is a 32-bit value in host byte order, as the kernel keeps fib results and the ct status.
func hostU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// dnatExprs is `meta nfproto ipvN dnat ip to meta l4proto . ip daddr . th dport map @dnatN` (ip6 for
// IPv6), or without `ip daddr` for the _any map.
func dnatExprs(f fam, anyAddr bool) []expr.Any {
	e := matchNFProto(f)
	e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1})
	portReg := uint32(reg9)
	if !anyAddr {
		off, next := uint32(ipv4DstOffset), uint32(reg10)
		if f == ipv6 {
			off, next = ipv6DstOffset, reg13
		}
		e = append(e, &expr.Payload{DestRegister: reg9, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: f.addrLen()})
		portReg = next
	}
	e = append(e,
		&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: thDportOffset, Len: portLen},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: dnatSet(f, anyAddr)},
	)
	nat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(f.nfproto()), RegAddrMin: reg1, RegProtoMin: reg9}
	if f == ipv6 {
		nat.RegProtoMin = reg2
	}
	return append(e, nat)
}

// ctStatusDNAT is the IPS_DST_NAT bit of the conntrack status.
const ctStatusDNAT = 0x20

func matchDNATed() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: hostU32(ctStatusDNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

func offsets(f fam) (src, dst uint32) {
	if f == ipv6 {
		return ipv6SrcOffset, ipv6DstOffset
	}
	return ipv4SrcOffset, ipv4DstOffset
}

// masqExprs is `ct status dnat ip saddr & MASK . ip daddr @masq4_L masquerade` (ip6 for IPv6; no mask
// for a full-length prefix).
func masqExprs(m masqLen) []expr.Any {
	src, dst := offsets(m.f)
	n := m.f.addrLen()
	dstReg := uint32(reg9)
	if m.f == ipv6 {
		dstReg = reg2
	}
	e := append(matchDNATed(), matchNFProto(m.f)...)
	e = append(e, &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: src, Len: n})
	if m.bits < int(n)*8 {
		e = append(e, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: n, Mask: maskBytes(int(n), m.bits), Xor: make([]byte, n)})
	}
	return append(e,
		&expr.Payload{DestRegister: dstReg, Base: expr.PayloadBaseNetworkHeader, Offset: dst, Len: n},
		&expr.Lookup{SourceRegister: reg1, SetName: m.name()},
		&expr.Masq{},
	)
}

// masqAllExprs is `ct status dnat ip daddr @masqall4 masquerade` (ip6 for IPv6).
func masqAllExprs(f fam) []expr.Any {
	_, dst := offsets(f)
	e := append(matchDNATed(), matchNFProto(f)...)
	return append(e,
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: dst, Len: f.addrLen()},
		&expr.Lookup{SourceRegister: reg1, SetName: masqAllSet(f)},
		&expr.Masq{},
	)
}

// maskBytes is the netmask of a /bits prefix, n bytes long.
func maskBytes(n, bits int) []byte {
	b := make([]byte, n)
	for i := range bits {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return b
}

// elem is one map element, as Add writes it and the kernel returns it.
type elem struct {
	set       string
	key, data []byte
	comment   string
	// hostKey is the host port an owner or dnat element stands for, to name it in errors.
	hostKey portmap.HostKey
	// retiring marks an element read back that a DEL or GC retired (see Retirement in the package
	// comment): it is gone for every purpose but a key that must be added again in its slot.
	retiring bool
}

// id names the element's slot: two elements with the same id cannot both exist.
func (e elem) id() string { return e.set + "|" + hex.EncodeToString(e.key) }

// same tells whether e and o are the same element with the same data.
func (e elem) same(o elem) bool { return e.id() == o.id() && string(e.data) == string(o.data) }

// protocolNumber is the IP protocol number of a mapping's protocol.
func protocolNumber(name string) (byte, bool) {
	switch name {
	case portmap.TCP:
		return unix.IPPROTO_TCP, true
	case portmap.UDP:
		return unix.IPPROTO_UDP, true
	case portmap.SCTP:
		return unix.IPPROTO_SCTP, true
	}
	return 0, false
}

func protocolName(p byte) string {
	for _, name := range []string{portmap.TCP, portmap.UDP, portmap.SCTP} {
		if n, _ := protocolNumber(name); n == p {
			return name
		}
	}
	return fmt.Sprintf("protocol %d", p)
}

// pad appends b to out, zero-padded to the next register boundary.
func pad(out, b []byte) []byte {
	out = append(out, b...)
	for len(out)%regSize != 0 {
		out = append(out, 0)
	}
	return out
}

func port16(p uint16) []byte { return []byte{byte(p >> 8), byte(p)} }

// hostKeyBytes is the key of a host port in dnatN/ownerN (addr valid) or their _any maps.
func hostKeyBytes(proto byte, addr netip.Addr, port uint16) []byte {
	b := pad(nil, []byte{proto})
	if addr.IsValid() {
		b = pad(b, addr.AsSlice())
	}
	return pad(b, port16(port))
}

// parseHostKey reads a key of set back into a HostKey, for error messages.
func parseHostKey(set string, key []byte) portmap.HostKey {
	if len(key) < 2*regSize {
		return portmap.HostKey{}
	}
	hk := portmap.HostKey{Protocol: protocolName(key[0])}
	rest := key[regSize:]
	if !strings.HasSuffix(set, "_any") {
		n := 4
		if strings.HasSuffix(set, "6") {
			n = 16
		}
		if len(rest) < n+portLen {
			return hk
		}
		hk.HostIP, _ = netip.AddrFromSlice(rest[:n])
		rest = rest[n:]
	}
	hk.HostPort = uint16(rest[0])<<8 | uint16(rest[1])
	return hk
}

func targetBytes(addr netip.Addr, port uint16) []byte { return pad(addr.AsSlice(), port16(port)) }

// masqElem makes traffic from src to pod masqueraded, after DNAT: "network . pod" in the map of src's
// prefix length, or the pod in masqallN for a /0.
func masqElem(src netip.Prefix, pod netip.Addr, o owner, cmt string) elem {
	f := famOf(pod)
	if src.Bits() == 0 {
		return elem{set: masqAllSet(f), key: pod.AsSlice(), data: o[:], comment: cmt}
	}
	return elem{
		set:     masqLen{f, src.Bits()}.name(),
		key:     append(src.Masked().Addr().AsSlice(), pod.AsSlice()...),
		data:    o[:],
		comment: cmt,
	}
}

// plan is what Add writes for an attachment.
type plan struct {
	owner owner
	elems []elem // owner and dnat elements per mapping, then masq elements, then the record
	// lens are the masqLen maps the masq elements go to, which the skeleton must have.
	lens []masqLen
}

// desired computes the elements of k's mappings. Mappings are validated here: this is the last place
// that sees them whole.
func desired(k firewall.Key, ms []portmap.Mapping, o portmap.Options) (plan, error) {
	p := plan{owner: ownerOf(k)}
	cmt := comment(k)
	type slot struct {
		f   fam
		key portmap.HostKey
	}
	targets := map[slot]portmap.Mapping{}
	subnets := map[netip.Addr]netip.Prefix{}
	var pods []netip.Addr
	for i, m := range ms {
		if err := validMapping(m); err != nil {
			return plan{}, fmt.Errorf("mapping %d (%v): %w", i, m, err)
		}
		host := m.HostIP
		if host.IsValid() && host.IsUnspecified() {
			host = netip.Addr{}
		}
		f := famOf(m.PodIP)
		hk := portmap.HostKey{Protocol: m.Protocol, HostIP: host, HostPort: m.HostPort}
		if prev, ok := targets[slot{f, hk}]; ok {
			if prev.PodIP == m.PodIP && prev.PodPort == m.PodPort {
				continue
			}
			return plan{}, fmt.Errorf("mapping %d: %v is also forwarded to %s", i, hk, netip.AddrPortFrom(prev.PodIP, prev.PodPort))
		}
		targets[slot{f, hk}] = m
		subnet := m.PodSubnet.Masked()
		if !subnet.IsValid() {
			subnet = netip.PrefixFrom(m.PodIP, m.PodIP.BitLen())
		}
		if prev, ok := subnets[m.PodIP]; ok && prev != subnet {
			return plan{}, fmt.Errorf("mapping %d: pod address %s given with subnets %s and %s", i, m.PodIP, prev, subnet)
		} else if !ok {
			subnets[m.PodIP] = subnet
			pods = append(pods, m.PodIP)
		}
		proto, _ := protocolNumber(m.Protocol)
		key := hostKeyBytes(proto, host, m.HostPort)
		anyAddr := !host.IsValid()
		p.elems = append(p.elems,
			elem{set: ownerSet(f, anyAddr), key: key, data: p.owner[:], comment: cmt, hostKey: hk},
			elem{set: dnatSet(f, anyAddr), key: key, data: targetBytes(m.PodIP, m.PodPort), comment: cmt, hostKey: hk},
		)
	}
	if len(p.elems) == 0 {
		return p, nil
	}
	for _, pod := range pods {
		f := famOf(pod)
		var srcs []netip.Prefix
		switch {
		case o.MasqAll:
			srcs = []netip.Prefix{f.everything()}
		case o.SNAT:
			srcs = []netip.Prefix{subnets[pod], f.loopback()}
			if srcs[0] == srcs[1] {
				srcs = srcs[:1]
			}
		}
		for _, src := range srcs {
			e := masqElem(src, pod, p.owner, cmt)
			p.elems = append(p.elems, e)
			if ml, ok := parseMasqLen(e.set); ok && !slices.Contains(p.lens, ml) {
				p.lens = append(p.lens, ml)
			}
		}
	}
	p.elems = append(p.elems, p.record(p.elems, cmt))
	return p, nil
}

// record is k's element in the attachments map: its data is a digest of es, so Remove can tell
// from a few lookups whether it found everything k owns.
func (p plan) record(es []elem, cmt string) elem {
	return elem{set: setAttachments, key: p.owner[:], data: elemsDigest(es), comment: cmt}
}

// elemsDigest hashes the elements' slots and data, in an order that does not depend on how they were found.
func elemsDigest(es []elem) []byte {
	lines := make([]string, 0, len(es))
	for _, e := range es {
		lines = append(lines, e.id()+"|"+hex.EncodeToString(e.data))
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	sum := digest.Sum256([]byte(strings.Join(lines, "\n")))
	return sum[:ownerLen]
}

func validMapping(m portmap.Mapping) error {
	if _, ok := protocolNumber(m.Protocol); !ok {
		return fmt.Errorf("protocol %q is not tcp, udp or sctp", m.Protocol)
	}
	if m.HostPort == 0 || m.PodPort == 0 {
		return fmt.Errorf("port 0")
	}
	if !m.PodIP.IsValid() || m.PodIP.Is4In6() || m.PodIP.IsUnspecified() {
		return fmt.Errorf("pod address %q is not a unicast IPv4 or IPv6 address", m.PodIP)
	}
	if m.HostIP.IsValid() && (m.HostIP.Is4In6() || m.HostIP.Is4() != m.PodIP.Is4()) {
		return fmt.Errorf("host address %s is not of the pod address's family", m.HostIP)
	}
	if m.PodSubnet.IsValid() && !m.PodSubnet.Contains(m.PodIP) {
		return fmt.Errorf("pod subnet %s does not contain the pod address %s", m.PodSubnet, m.PodIP)
	}
	return nil
}
