package doctor

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/netloom/netloom/pkg/xtables"
)

// gate is one place that judges forwarded packets: the filter table's FORWARD chain of an iptables build
// (legacy or nf_tables) or an nftables base chain on the forward hook. A packet is forwarded only if
// every gate of its family lets it through.
type gate struct {
	Name       string // "iptables-legacy FORWARD", "nft inet mytable fw"
	Fam4, Fam6 bool
	// DropBy says what drops the packets no earlier rule accepts: "policy", or an unconditional DROP or
	// REJECT rule of the chain itself (RHEL's "-A FORWARD -j REJECT" under an ACCEPT policy); "" when
	// the chain lets them through.
	DropBy string
	// Accepts are the rules that accept, jumps followed, each with every condition on its path.
	Accepts []acceptRule
	// fixFmt renders the fix for one prefix: %[1]s the prefix, %[2]s the family's nft keyword (ip, ip6).
	fixFmt string
}

// acceptRule is an accepting rule as the conditions it needs. A condition the doctor cannot judge
// (a conntrack state, a port, a negation) makes the rule not count: it does not accept every pod packet.
type acceptRule struct {
	Text  string
	Conds []cond
	Other bool
}

// cond is one match of a rule: a source or destination prefix, an input or output interface.
type cond struct {
	Kind  string // "src", "dst", "in", "out"
	Value string
}

// accepts returns a rule of g that accepts packets of prefix p's pods, on device dev (their bridge, or
// "" for any).
func (g gate) accepts(p netip.Prefix, dev string) (string, bool) {
	for _, r := range g.Accepts {
		if !r.Other && r.matches(p, dev) {
			return r.Text, true
		}
	}
	return "", false
}

func (r acceptRule) matches(p netip.Prefix, dev string) bool {
	for _, c := range r.Conds {
		switch c.Kind {
		case "src", "dst":
			q, err := parsePrefixOrAddr(c.Value)
			if err != nil || q.Addr().Is4() != p.Addr().Is4() || !q.Overlaps(p) {
				return false
			}
		case "in", "out":
			if dev == "" || !ifaceMatches(c.Value, dev) {
				return false
			}
		}
	}
	return true
}

// ifaceMatches is iptables' and nft's interface match: exact, or a prefix with a trailing '+' or '*'.
func ifaceMatches(pattern, dev string) bool {
	if s, ok := strings.CutSuffix(pattern, "+"); ok {
		return strings.HasPrefix(dev, s)
	}
	if s, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(dev, s)
	}
	return pattern == dev
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// dropping names the gate and what drops in it: "iptables-nft FORWARD (policy drop)".
func (g gate) dropping() string {
	if g.DropBy == "policy" {
		return g.Name + " (policy drop)"
	}
	return fmt.Sprintf("%s (%s)", g.Name, g.DropBy)
}

func (g gate) fix(p netip.Prefix) string {
	kw := "ip"
	if p.Addr().Is6() {
		kw = "ip6"
	}
	return fmt.Sprintf(g.fixFmt, p, kw)
}

// maxJumpDepth bounds how deep jumps are followed (a loop the kernel would refuse cannot hang us).
const maxJumpDepth = 8

// gates returns the node's gates, read once per Node: the br-netfilter and forward-policy checks both
// judge them, and each reading runs up to four iptables-save and an nft.
func (n *Node) gates() ([]gate, error) {
	if n.fw == nil {
		g, err := readGates()
		n.fw = &gateReading{g, err}
	}
	return n.fw.gates, n.fw.err
}

// gateReading is one reading of the firewall, with its error.
type gateReading struct {
	gates []gate
	err   error
}

// readGates reads every gate of the calling thread's network namespace. A tool that is not installed
// means that firewall is not in use; a tool that fails is an error.
func readGates() ([]gate, error) {
	var gates []gate
	var errs []error
	for _, v := range []xtables.Variant{xtables.VariantLegacy, xtables.VariantNFT} {
		for _, fam := range xtables.Families() {
			cfg := xtables.Config{Variant: v}
			if v == xtables.VariantLegacy {
				if loaded, _ := xtables.LegacyTableLoaded(fam, "filter"); !loaded {
					continue // reading it would create it
				}
			}
			save, err := xtables.NewExec(cfg).Save(fam, "filter")
			if errors.Is(err, exec.ErrNotFound) {
				continue
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !strings.Contains(save, "*filter") {
				continue
			}
			g, err := iptablesGate(cfg.Command(fam)+" FORWARD", save, cfg.Command(fam), fam)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			gates = append(gates, g)
		}
	}
	js, err := exec.Command("nft", "-j", "list", "ruleset").Output()
	switch {
	case errors.Is(err, exec.ErrNotFound):
	case err != nil:
		errs = append(errs, fmt.Errorf("nft -j list ruleset: %w", err))
	default:
		g, err := nftGates(js)
		if err != nil {
			errs = append(errs, err)
		}
		gates = append(gates, g...)
	}
	return gates, errors.Join(errs...)
}
