// Package forward opens the node's filter FORWARD chain for pod addresses, in the reference firewall
// plugin's iptables layout (containernetworking/plugins v1.9.1, plugins/meta/firewall), so a pod added by
// either plugin is checked and deleted by the other:
//
//	-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
//	-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
//	-A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//	-A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT
//
// The admin chain (CNI-ADMIN unless configured) is created empty and never flushed nor deleted: node
// administrators put their own rules there. The two per-pod rules carry no comment, as the reference's
// do not, so nothing in the kernel names the attachment that owns them; Store records each attachment's
// addresses on disk so that GC and a DEL without prevResult can find them.
//
// The "same-bridge" and "isolated" ingress policies add the reference's Docker-style isolation chains,
// once per bridge and never removed (other pods may still use the bridge):
//
//	-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1
//	-A CNI-ISOLATION-STAGE-1 -i cni0 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
//	-A CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2
//	-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
//	-A CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
//	-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
//
// This file decides the rules (pure functions of the table as read); iptables.go applies them.
package forward

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/netloom/netloom/pkg/xtables"
)

// Names of the reference's table and chains.
const (
	FilterTable       = "filter"
	ForwardChain      = "FORWARD"
	PodChain          = "CNI-FORWARD"
	DefaultAdminChain = "CNI-ADMIN"
	Stage1Chain       = "CNI-ISOLATION-STAGE-1"
	Stage2Chain       = "CNI-ISOLATION-STAGE-2"
)

// Comments of the reference's rules: the jumps are found by them.
const (
	podJumpComment   = "CNI firewall plugin rules"
	adminJumpComment = "CNI firewall plugin admin overrides"
	isolationComment = "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)"
)

// Policy is the "ingressPolicy" key.
type Policy string

const (
	PolicyOpen       Policy = "open"        // every inbound connection is accepted (the default)
	PolicySameBridge Policy = "same-bridge" // connections from other isolated bridges are dropped
	PolicyIsolated   Policy = "isolated"    // same-bridge, and connections within the bridge too
)

// Isolates tells whether p adds the isolation chains.
func (p Policy) Isolates() bool { return p == PolicySameBridge || p == PolicyIsolated }

// maxChainName is the longest chain name iptables takes (XT_EXTENSION_MAXNAMELEN less the NUL).
const maxChainName = 28

// reservedChains are names an admin chain cannot take: the built-in chains and targets, and the chains
// this package manages itself.
var reservedChains = []string{
	"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING",
	"ACCEPT", "DROP", "RETURN", "REJECT", "QUEUE", "LOG",
	PodChain, Stage1Chain, Stage2Chain,
}

// CheckChainName says why name cannot be an iptables chain this package creates, or returns nil.
func CheckChainName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty chain name")
	case len(name) > maxChainName:
		return fmt.Errorf("%q is %d characters long; iptables takes at most %d", name, len(name), maxChainName)
	case strings.HasPrefix(name, "-") || strings.HasPrefix(name, "!"):
		return fmt.Errorf("%q starts with %q, which iptables reads as an option", name, name[:1])
	case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\'' || r == '\\' }):
		return fmt.Errorf("%q holds a blank, a quote, a backslash or a non-ASCII character", name)
	case slices.Contains(reservedChains, name):
		return fmt.Errorf("%q is a built-in chain or target or one of the firewall plugin's own chains", name)
	}
	return nil
}

// HostPrefix is a as the reference writes it in a rule: a /32 or a /128.
func HostPrefix(a netip.Addr) string {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// podRules are the rules of CNI-FORWARD that let addr's traffic through: replies to it, and all from it.
func podRules(addr netip.Addr) []xtables.Rule {
	p := HostPrefix(addr)
	return []xtables.Rule{
		{"-d", p, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-s", p, "-j", "ACCEPT"},
	}
}

func podJump() xtables.Rule {
	return xtables.Rule{"-m", "comment", "--comment", podJumpComment, "-j", PodChain}
}

func adminJump(admin string) xtables.Rule {
	return xtables.Rule{"-m", "comment", "--comment", adminJumpComment, "-j", admin}
}

func policyComment(isolated bool) string {
	if isolated {
		return "CNI firewall plugin rules (ingressPolicy: isolated)"
	}
	return "CNI firewall plugin rules (ingressPolicy: same-bridge)"
}

// isolation lists the isolation rules for bridge, each with its chain and where the reference puts it
// when it is missing (first, or last), in the order the reference ensures them.
func isolation(bridge string, isolated bool) []placed {
	c := []string{"-m", "comment", "--comment"}
	withComment := func(comment string, match []string, target string) xtables.Rule {
		r := append(slices.Clone(match), c...)
		return append(r, comment, "-j", target)
	}
	out := []placed{
		{ForwardChain, true, withComment(isolationComment, nil, Stage1Chain)},
		{Stage1Chain, true, withComment(policyComment(isolated), []string{"-i", bridge, "!", "-o", bridge}, Stage2Chain)},
	}
	if isolated {
		out = append(out, placed{Stage1Chain, true, withComment(policyComment(true), []string{"-i", bridge, "-o", bridge}, "DROP")})
	}
	return append(out,
		placed{Stage1Chain, false, withComment(isolationComment, nil, "RETURN")},
		placed{Stage2Chain, true, withComment(isolationComment, []string{"-o", bridge}, "DROP")},
		placed{Stage2Chain, false, withComment(isolationComment, nil, "RETURN")},
	)
}

// placed is a rule, its chain, and whether it goes first (else last) when it is missing.
type placed struct {
	chain string
	first bool
	rule  xtables.Rule
}

// ensure adds p to b unless t's chain holds it already.
func (p placed) ensure(b *xtables.Batch, t xtables.Table) {
	if xtables.Contains(t.Rules[p.chain], p.rule) {
		return
	}
	if p.first {
		b.Insert(p.chain, 1, p.rule)
	} else {
		b.Append(p.chain, p.rule)
	}
}

// Plan is what one ADD installs in one IP family's filter table.
type Plan struct {
	Admin  string       // the admin chain's name
	Addrs  []netip.Addr // the pod's addresses of the family; none: no pod rules, no chains
	Bridge string       // the bridge to isolate; "" for the open policy
	Policy Policy
}

// Open returns the changes that make t hold p: the reference's chains and jumps, the pod rules, then the
// isolation rules, each only when missing, in the order the reference makes them.
func (p Plan) Open(t xtables.Table) xtables.Batch {
	b, _ := p.Change(t)
	return b
}

// Change is Open, also telling whether the changes add anything attachments share (a chain, a jump, an
// isolation rule) rather than only p's own pod rules: only such a change must hold the lock (see
// Serialise), and once the first pod made the chains, an ADD adds its pod rules alone.
func (p Plan) Change(t xtables.Table) (b xtables.Batch, shared bool) {
	if len(p.Addrs) > 0 {
		ensureChains(&b, t, PodChain, p.Admin)
		placed{ForwardChain, true, podJump()}.ensure(&b, t)
		placed{PodChain, true, adminJump(p.Admin)}.ensure(&b, t)
		shared = !b.Empty()
		for _, a := range p.Addrs {
			for _, r := range podRules(a) {
				placed{PodChain, false, r}.ensure(&b, t)
			}
		}
	}
	if p.Policy.Isolates() {
		before := len(b.Lines())
		ensureChains(&b, t, Stage1Chain, Stage2Chain)
		for _, r := range isolation(p.Bridge, p.Policy == PolicyIsolated) {
			r.ensure(&b, t)
		}
		shared = shared || len(b.Lines()) > before
	}
	return b, shared
}

func ensureChains(b *xtables.Batch, t xtables.Table, chains ...string) {
	for _, c := range chains {
		if !t.Chains[c] {
			b.NewChain(c)
		}
	}
}

// Close returns the changes that delete addrs' pod rules from t, every copy of each. Chains, jumps and
// isolation rules stay: other pods use them, and users edit the admin chain.
func Close(t xtables.Table, addrs []netip.Addr) xtables.Batch {
	var b xtables.Batch
	for _, a := range addrs {
		for _, r := range podRules(a) {
			for _, have := range t.Rules[PodChain] {
				if have.Equal(r) {
					b.Delete(PodChain, r)
				}
			}
		}
	}
	return b
}

// Diff says what t lacks of p, or returns nil when it holds all of it.
func (p Plan) Diff(t xtables.Table) error {
	if len(p.Addrs) > 0 {
		for _, c := range []string{PodChain, p.Admin} {
			if !t.Chains[c] {
				return fmt.Errorf("chain %s is missing", c)
			}
		}
		want := []placed{{ForwardChain, true, podJump()}, {PodChain, true, adminJump(p.Admin)}}
		for _, a := range p.Addrs {
			for _, r := range podRules(a) {
				want = append(want, placed{PodChain, false, r})
			}
		}
		if err := missing(t, want); err != nil {
			return err
		}
	}
	if p.Policy.Isolates() {
		return missing(t, isolation(p.Bridge, p.Policy == PolicyIsolated))
	}
	return nil
}

func missing(t xtables.Table, want []placed) error {
	for _, w := range want {
		if !xtables.Contains(t.Rules[w.chain], w.rule) {
			return fmt.Errorf("rule -A %s %s is missing", w.chain, w.rule)
		}
	}
	return nil
}

// keep tells Parse which chains' rules to read: FORWARD's and the CNI ones. Other chains, however many
// rules they hold, are only listed.
func keep(chain string) bool { return chain == ForwardChain || strings.HasPrefix(chain, "CNI-") }
