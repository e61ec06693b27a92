package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/xtables"
)

// The nftables layout: netloom's own (the reference v1.9.1 has no nftables backend), the iptables one
// translated into one inet table whose forward base chain is the node's forward filter for the pods.
//
//	table inet cni_firewall {
//		chain forward {
//			type filter hook forward priority filter; policy accept;
//			jump isolation-stage-1 comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)"
//			jump admin comment "CNI firewall plugin admin overrides"
//			meta nfproto ipv4 ip daddr 10.88.0.5 ct state established,related accept comment "10.88.0.5/32"
//			meta nfproto ipv4 ip saddr 10.88.0.5 accept comment "10.88.0.5/32"
//		}
//		chain admin {}
//		chain isolation-stage-1 {
//			iifname "cni0" oifname "cni0" drop comment "isolated cni0"
//			iifname "cni0" oifname != "cni0" jump isolation-stage-2 comment "same-bridge cni0"
//		}
//		chain isolation-stage-2 {
//			oifname "cni0" drop comment "bridge cni0"
//		}
//	}
//
// An nftables accept ends a packet's walk through this table only: every other base chain on the forward
// hook, of any table or of iptables, still sees it. So the pod rules open what this chain's policy
// closes: a node that denies forwarding by default sets the policy here (`nft add chain inet cni_firewall
// forward '{ policy drop ; }'`, before or after the first pod), and the plugin never changes the policy
// of a chain that exists. The isolation drops work whatever the node does elsewhere. The admin chain is
// the administrator's: created empty, never flushed nor deleted. Pod rules carry their address as
// comment, the isolation rules their bridge, which is how DEL, CHECK and the next ADD find them.
const (
	NFTTable      = "cni_firewall"
	nftForward    = "forward"
	nftAdmin      = "admin"
	nftStage1     = "isolation-stage-1"
	nftStage2     = "isolation-stage-2"
	nftPriority   = 0  // filter
	ifNameSize    = 16 // IFNAMSIZ: nft compares interface names as 16 bytes, NUL padded
	ctEstablished = 1 << 1
	ctRelated     = 1 << 2
)

func nftTable() nftnl.Table { return nftnl.Table{Family: unix.NFPROTO_INET, Name: NFTTable} }

// nftChains are the table's chains, the base chain last: it jumps to the others.
func nftChains() []nftnl.Chain {
	return []nftnl.Chain{
		{Name: nftAdmin}, {Name: nftStage2}, {Name: nftStage1},
		{Name: nftForward, Hook: &nftnl.Hook{Type: "filter", Num: unix.NF_INET_FORWARD, Priority: nftPriority}},
	}
}

// nftPrefix are the forward chain's first rules, added with the chain: isolation, then the admin's.
func nftPrefix() []nftnl.Rule {
	return []nftnl.Rule{
		{Chain: nftForward, Comment: isolationComment, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: nftStage1}}},
		{Chain: nftForward, Comment: adminJumpComment, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: nftAdmin}}},
	}
}

const reg = 1

func ifName(name string) []byte {
	b := make([]byte, ifNameSize)
	copy(b, name)
	return b
}

func matchIf(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: reg}, &expr.Cmp{Op: op, Register: reg, Data: ifName(name)}}
}

// nftPodRules are the rules that let a's traffic through: replies to it, and all from it.
func nftPodRules(a netip.Addr) []nftnl.Rule {
	a = a.Unmap()
	host := netip.PrefixFrom(a, a.BitLen())
	mask := binary.NativeEndian.AppendUint32(nil, ctEstablished|ctRelated)
	in := append(nftnl.MatchFamily(a.Is4()), nftnl.MatchDaddr(host, expr.CmpOpEq)...)
	in = append(in,
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictAccept})
	out := append(nftnl.MatchFamily(a.Is4()), nftnl.MatchSaddr(host, expr.CmpOpEq)...)
	out = append(out, &expr.Verdict{Kind: expr.VerdictAccept})
	c := HostPrefix(a)
	return []nftnl.Rule{{Chain: nftForward, Comment: c, Exprs: in}, {Chain: nftForward, Comment: c, Exprs: out}}
}

// nftIsolation are the isolation rules of bridge.
func nftIsolation(bridge string, isolated bool) []nftnl.Rule {
	var out []nftnl.Rule
	if isolated {
		e := append(matchIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, bridge), matchIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge)...)
		out = append(out, nftnl.Rule{Chain: nftStage1, Comment: "isolated " + bridge, Exprs: append(e, &expr.Verdict{Kind: expr.VerdictDrop})})
	}
	e := append(matchIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, bridge), matchIf(expr.MetaKeyOIFNAME, expr.CmpOpNeq, bridge)...)
	drop := append(matchIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge), &expr.Verdict{Kind: expr.VerdictDrop})
	return append(out,
		nftnl.Rule{Chain: nftStage1, Comment: "same-bridge " + bridge, Exprs: append(e, &expr.Verdict{Kind: expr.VerdictJump, Chain: nftStage2})},
		nftnl.Rule{Chain: nftStage2, Comment: "bridge " + bridge, Exprs: drop})
}

// nftState is the table as listed.
type nftState struct {
	chains []nftnl.Chain
	rules  []nftnl.Rule
}

func (s nftState) hasChain(name string) bool {
	return slices.ContainsFunc(s.chains, func(c nftnl.Chain) bool { return c.Name == name })
}

// has tells whether s holds a rule like r: same chain, comment and expressions.
func (s nftState) has(r nftnl.Rule) bool {
	want := expr.Describe(r.Exprs)
	for _, h := range s.rules {
		if h.Chain != r.Chain || h.Comment != r.Comment {
			continue
		}
		if e, err := h.Expressions(); err == nil && expr.Describe(e) == want {
			return true
		}
	}
	return false
}

// nftEnsure returns the messages that add the table and its missing chains, put the forward chain's
// prefix rules first in it when they are missing, and add the rules of want that s lacks; none when
// nothing is missing.
func nftEnsure(s nftState, want []nftnl.Rule) ([]nftnl.Msg, error) {
	t := nftTable()
	var b nftnl.Batch
	for _, ch := range nftChains() {
		if !s.hasChain(ch.Name) { // never re-add one: that would reset the policy the administrator set
			b.Add(createChain(t, ch))
		}
	}
	prefix := nftPrefix()
	for i := len(prefix) - 1; i >= 0; i-- {
		if !s.has(prefix[i]) {
			b.Add(insertFirst(t, prefix[i]))
		}
	}
	for _, r := range want {
		if !s.has(r) {
			b.Add(t.AddRule(r))
		}
	}
	msgs, err := b.Msgs()
	if err != nil || len(msgs) == 0 {
		return nil, err
	}
	table, err := t.Add("")
	return append([]nftnl.Msg{table}, msgs...), err
}

// createChain adds ch and fails (EEXIST) when it exists: of two ADDs that both found it missing, the
// second starts over from a fresh listing instead of inserting the forward chain's jumps a second time.
func createChain(t nftnl.Table, ch nftnl.Chain) (nftnl.Msg, error) {
	m, err := t.AddChain(ch)
	m.Flags |= unix.NLM_F_EXCL
	return m, err
}

// insertFirst puts r at the top of its chain: a NEWRULE without NLM_F_APPEND and without a position.
func insertFirst(t nftnl.Table, r nftnl.Rule) (nftnl.Msg, error) {
	m, err := t.AddRule(r)
	m.Flags &^= unix.NLM_F_APPEND
	m.What = fmt.Sprintf("insert rule %q first in %s", r.Comment, r.Chain)
	return m, err
}

// NFTables applies the nftables layout through nf_tables netlink (pkg/nftnl), every change one
// transaction, planned and committed holding a lock (see Serialise). Its methods use the network
// namespace of the calling thread.
type NFTables struct {
	// LockFile is the lock its changes hold; zero: DefaultLockFile.
	LockFile string
}

var (
	_ Backend  = NFTables{}
	_ Isolator = NFTables{}
)

// Usable says why nf_tables cannot be used here, or returns nil.
func (NFTables) Usable() error {
	if !nftnl.Available() {
		return errors.New("nf_tables does not answer over netlink")
	}
	return nil
}

// read lists the table's chains and rules.
func (NFTables) read(c *nftnl.Conn) (nftState, error) {
	chains, err := c.Chains(nftTable())
	if err != nil {
		return nftState{}, err
	}
	rules, err := c.Rules(nftTable(), "")
	return nftState{chains: chains, rules: rules}, err
}

// commit sends the transaction build makes from a fresh listing; it starts over once when the kernel
// refuses it because the table changed meanwhile (a rule to delete is gone, a chain to add exists).
func (n NFTables) commit(build func(nftState) ([]nftnl.Msg, error)) error {
	file := n.LockFile
	if file == "" {
		file = DefaultLockFile
	}
	return Serialise(file, xtables.DefaultWait, func() error { return n.commitLocked(build) })
}

// commitLocked is commit, the lock held. The retry stays: the reference plugins, or an administrator's
// nft, do not take netloom's lock.
func (n NFTables) commitLocked(build func(nftState) ([]nftnl.Msg, error)) error {
	c, err := nftnl.Dial()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.Close()
	for attempt := 0; ; attempt++ {
		s, err := n.read(c)
		if err != nil {
			return fmt.Errorf("nftables: list table %s: %w", NFTTable, err)
		}
		msgs, err := build(s)
		if err != nil || len(msgs) == 0 {
			return err
		}
		err = c.Transact(msgs)
		if err == nil || attempt == 1 || !(errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EEXIST)) {
			return err
		}
	}
}

func (n NFTables) verify(check func(nftState) error) error {
	c, err := nftnl.Dial()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.Close()
	s, err := n.read(c)
	if err != nil {
		return fmt.Errorf("nftables: list table %s: %w", NFTTable, err)
	}
	return check(s)
}

func podRulesFor(addrs []netip.Addr) []nftnl.Rule {
	v4, v6 := splitFamilies(addrs)
	var out []nftnl.Rule
	for _, a := range append(v4, v6...) {
		out = append(out, nftPodRules(a)...)
	}
	return out
}

// Open adds the table and chains when missing and addrs' pod rules.
func (n NFTables) Open(addrs []netip.Addr) error {
	return n.commit(func(s nftState) ([]nftnl.Msg, error) { return nftEnsure(s, podRulesFor(addrs)) })
}

// Close deletes addrs' pod rules (every rule of the forward chain with an address of addrs as its
// comment); it succeeds when they are gone.
func (n NFTables) Close(addrs []netip.Addr) error {
	comments := map[string]bool{}
	for _, a := range addrs {
		comments[HostPrefix(a)] = true
	}
	return n.commit(func(s nftState) ([]nftnl.Msg, error) {
		var b nftnl.Batch
		for _, r := range s.rules {
			if r.Chain == nftForward && comments[r.Comment] {
				b.Add(nftTable().DelRule(r.Chain, r.Handle))
			}
		}
		return b.Msgs()
	})
}

// Check says what is missing of what Open adds.
func (n NFTables) Check(addrs []netip.Addr) error {
	return n.verify(func(s nftState) error { return nftMissing(s, append(nftPrefix(), podRulesFor(addrs)...)) })
}

// Isolate adds the isolation rules of bridge (policy decides whether traffic within it is dropped).
func (n NFTables) Isolate(_ []netip.Addr, bridge string, policy Policy) error {
	return n.commit(func(s nftState) ([]nftnl.Msg, error) {
		return nftEnsure(s, nftIsolation(bridge, policy == PolicyIsolated))
	})
}

// CheckIsolation says what is missing of what Isolate adds.
func (n NFTables) CheckIsolation(_ []netip.Addr, bridge string, policy Policy) error {
	return n.verify(func(s nftState) error {
		return nftMissing(s, append(nftPrefix(), nftIsolation(bridge, policy == PolicyIsolated)...))
	})
}

func nftMissing(s nftState, want []nftnl.Rule) error {
	for _, ch := range nftChains() {
		if !s.hasChain(ch.Name) {
			return fmt.Errorf("nftables: chain %s of table inet %s is missing", ch.Name, NFTTable)
		}
	}
	for _, r := range want {
		if !s.has(r) {
			return fmt.Errorf("nftables: rule %q (%s) of chain %s is missing", r.Comment, expr.Describe(r.Exprs), r.Chain)
		}
	}
	return nil
}
