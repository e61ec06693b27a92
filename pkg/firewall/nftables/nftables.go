// Package nftables masquerades pod traffic through nf_tables over netlink (no `nft` binary), in the
// reference CNI plugins' layout:
//
//	table inet cni_plugins_masquerade {
//		chain masq_checks {
//			ip saddr 10.1.2.5 ip daddr != 10.1.2.0/24 masquerade comment "<net hash>-<attachment hash>, net: N, if: I, id: C"
//		}
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ip daddr 224.0.0.0/4 return
//			ip6 daddr ff00::/8 return
//			goto masq_checks
//		}
//	}
//
// A rule belongs to the attachment whose hashes start its comment, so the reference plugins and netloom
// find and delete each other's rules. The expressions are the ones nft compiles for the rule text above,
// so `nft list ruleset` prints netloom's rules exactly like the reference's. Unlike the reference, netloom
// sets no comment on the table and its chains: google/nftables cannot send table or chain user data. The
// kernel ignores a comment on a table or chain that already exists, so neither side's ADD fails on the
// other's table.
//
// Every change is one netlink transaction, which the kernel applies whole or not at all, so concurrent
// plugin runs need no lock: adding an existing table or chain in a batch is a no-op. Ensure lists the two
// chains first and sends only what is missing; unlike the reference it does not rewrite the postrouting
// chain when it is intact (on the test kernel that rewrite alone costs some 10 ms per ADD). A transaction
// that fails because something it deletes or adds to vanished meanwhile is rebuilt from a fresh listing.
package nftables

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	nft "github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/nftexpr"
)

// retries bounds how often a transaction is rebuilt when a rule it deletes vanished meanwhile (another
// process removed it between our listing and our commit).
const retries = 3

// The table and chains are built per use: google/nftables takes pointers, and a shared value could be
// changed under another caller.
func table() *nft.Table { return &nft.Table{Name: TableName, Family: nft.TableFamilyINet} }

func masqChain() *nft.Chain { return &nft.Chain{Name: MasqChain, Table: table()} }

func postChain() *nft.Chain {
	return &nft.Chain{
		Name: PostroutingName, Table: table(), Type: nft.ChainTypeNAT,
		Hooknum: nft.ChainHookPostrouting, Priority: nft.ChainPriorityNATSource,
	}
}

// Masq is the nftables Masquerader. Its methods work in the network namespace of the calling thread.
type Masq struct{}

var _ firewall.Masquerader = (*Masq)(nil)

// New returns the nftables Masquerader.
func New() *Masq { return &Masq{} }

// Available tells whether nf_tables answers over netlink here.
func Available() bool {
	c, err := nft.New()
	if err != nil {
		return false
	}
	_, err = c.ListTablesOfFamily(nft.TableFamilyINet)
	return err == nil
}

func comment(r *nft.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

// rulesWhere lists masq_checks and returns the rules whose comment satisfies keep. A missing table or
// chain reads as empty.
func rulesWhere(c *nft.Conn, keep func(comment string) bool) ([]*nft.Rule, error) {
	rules, err := c.GetRules(table(), masqChain())
	if err != nil {
		return nil, fmt.Errorf("list %s %s: %w", TableName, MasqChain, err)
	}
	var out []*nft.Rule
	for _, r := range rules {
		if keep(comment(r)) {
			out = append(out, r)
		}
	}
	return out, nil
}

func hasPrefix(prefix string) func(string) bool {
	return func(c string) bool { return strings.HasPrefix(c, prefix) }
}

// commit runs build, which queues one transaction on c from a fresh listing, and sends it; it starts over
// when a rule to delete had gone meanwhile.
func commit(build func(c *nft.Conn) (bool, error)) error {
	for attempt := 1; ; attempt++ {
		c, err := nft.New()
		if err != nil {
			return err
		}
		queued, err := build(c)
		if err != nil || !queued {
			return err
		}
		err = c.Flush()
		if err == nil || !errors.Is(err, unix.ENOENT) || attempt == retries {
			return err
		}
	}
}

// Ensure makes k's rules in masq_checks one per address in addrs, and the table's skeleton what the
// reference writes, in one transaction. It leaves alone what is already right: on the test kernel a
// transaction that deletes a rule or re-adds the hooked chain takes 10-20 ms, one that only adds rules
// well under 1 ms.
func (m *Masq) Ensure(k firewall.Key, addrs []netip.Prefix) error {
	if err := k.Check(); err != nil {
		return err
	}
	v4, v6, err := firewall.SplitFamilies(addrs)
	if err != nil {
		return fmt.Errorf("ipmasq %v: %w", k, err)
	}
	if len(v4)+len(v6) == 0 {
		return m.Remove(k)
	}
	ud := userdata.AppendString(nil, userdata.TypeComment, Comment(k))
	err = commit(func(c *nft.Conn) (bool, error) {
		mine, err := rulesWhere(c, hasPrefix(instanceHash(k)))
		if err != nil {
			return false, err
		}
		post, err := c.GetRules(table(), postChain())
		if err != nil {
			return false, fmt.Errorf("list %s: %w", PostroutingName, err)
		}
		skeletonOK := skeletonIntact(post)
		stale, missing := plan(mine, append(v4, v6...))
		if skeletonOK && len(stale) == 0 && len(missing) == 0 {
			return false, nil
		}
		t, masq := table(), masqChain()
		if !skeletonOK {
			// Adding a table or chain that exists changes nothing, so racing plugins need no lock. It
			// is skipped when the skeleton is intact: re-adding the hooked chain costs some 10 ms.
			c.AddTable(t)
			c.AddChain(masq)
			pc := postChain()
			c.AddChain(pc)
			c.FlushChain(pc)
			for _, e := range postroutingExprs() {
				c.AddRule(&nft.Rule{Table: t, Chain: pc, Exprs: e})
			}
		}
		for _, r := range stale {
			if err := c.DelRule(r); err != nil {
				return false, err
			}
		}
		for _, a := range missing {
			c.AddRule(&nft.Rule{Table: t, Chain: masq, Exprs: masqExprs(a), UserData: ud})
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("ipmasq %v: nftables: %w", k, err)
	}
	return nil
}

// skeletonIntact tells whether the postrouting chain holds exactly the rules Ensure would write.
func skeletonIntact(rules []*nft.Rule) bool {
	want := postroutingExprs()
	if len(rules) != len(want) {
		return false
	}
	for i, r := range rules {
		if nftexpr.Describe(r.Exprs) != nftexpr.Describe(want[i]) {
			return false
		}
	}
	return true
}

// plan splits an attachment's existing rules into those to keep, one per address, and stale ones, and
// returns the addresses that still need a rule.
func plan(existing []*nft.Rule, addrs []netip.Prefix) (stale []*nft.Rule, missing []netip.Prefix) {
	kept := make([]bool, len(existing))
	for _, a := range addrs {
		want := nftexpr.Describe(masqExprs(a))
		found := false
		for i, r := range existing {
			if !kept[i] && nftexpr.Describe(r.Exprs) == want {
				kept[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, a)
		}
	}
	for i, r := range existing {
		if !kept[i] {
			stale = append(stale, r)
		}
	}
	return stale, missing
}

// Remove deletes k's rules in masq_checks; the table and its chains stay for other attachments, as the
// reference leaves them.
func (m *Masq) Remove(k firewall.Key) error {
	if err := k.Check(); err != nil {
		return err
	}
	if err := deleteWhere(hasPrefix(instanceHash(k))); err != nil {
		return fmt.Errorf("ipmasq %v: remove: nftables: %w", k, err)
	}
	return nil
}

func deleteWhere(match func(string) bool) error {
	return commit(func(c *nft.Conn) (bool, error) {
		rules, err := rulesWhere(c, match)
		if err != nil {
			return false, err
		}
		for _, r := range rules {
			if err := c.DelRule(r); err != nil {
				return false, err
			}
		}
		return len(rules) > 0, nil
	})
}

// GC deletes network's rules whose attachment is not in valid.
func (m *Masq) GC(network string, valid map[conf.Attachment]bool) error {
	if err := deleteWhere(staleFor(network, valid)); err != nil {
		return fmt.Errorf("ipmasq gc %q: nftables: %w", network, err)
	}
	return nil
}

// staleFor matches the comments of network's rules whose attachment is not in valid. It compares the
// hashes only, so a comment cut short elsewhere still matches.
func staleFor(network string, valid map[conf.Attachment]bool) func(comment string) bool {
	keep := make(map[string]bool, len(valid))
	for a := range valid {
		keep[instanceHash(firewall.Key{Network: network, ContainerID: a.ContainerID, IfName: a.IfName})] = true
	}
	prefix := networkHash(network) + "-"
	n := len(prefix) + hashLen
	return func(c string) bool {
		return strings.HasPrefix(c, prefix) && len(c) >= n && !keep[c[:n]]
	}
}

// Check reports what of k's masquerade for addrs is missing: the postrouting hook, its jump to
// masq_checks, or a rule for an address.
func (m *Masq) Check(k firewall.Key, addrs []netip.Prefix) error {
	if err := k.Check(); err != nil {
		return err
	}
	v4, v6, err := firewall.SplitFamilies(addrs)
	if err != nil {
		return fmt.Errorf("ipmasq %v: %w", k, err)
	}
	c, err := nft.New()
	if err != nil {
		return fmt.Errorf("ipmasq %v: nftables: %w", k, err)
	}
	have, err := read(c, k)
	if err != nil {
		return fmt.Errorf("ipmasq %v: nftables: %w", k, err)
	}
	if problems := diff(append(v4, v6...), have); len(problems) > 0 {
		return fmt.Errorf("ipmasq %v: %s", k, strings.Join(problems, "; "))
	}
	return nil
}

// state is what Check needs of the kernel, reduced to text.
type state struct {
	postHook  string   // type and hook of the postrouting chain, "" if it does not exist
	postRules []string // described
	masqRules []string // described, of this attachment
}

func read(c *nft.Conn, k firewall.Key) (state, error) {
	var st state
	chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
	if err != nil {
		return st, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName && ch.Name == PostroutingName {
			st.postHook = hookOf(ch)
		}
	}
	if st.postHook != "" {
		post, err := c.GetRules(table(), postChain())
		if err != nil {
			return st, fmt.Errorf("list %s: %w", PostroutingName, err)
		}
		for _, r := range post {
			st.postRules = append(st.postRules, nftexpr.Describe(r.Exprs))
		}
	}
	mine, err := rulesWhere(c, hasPrefix(instanceHash(k)))
	if err != nil {
		return st, err
	}
	for _, r := range mine {
		st.masqRules = append(st.masqRules, nftexpr.Describe(r.Exprs))
	}
	return st, nil
}

func hookOf(ch *nft.Chain) string {
	if ch.Hooknum == nil || ch.Priority == nil {
		return "regular"
	}
	return fmt.Sprintf("type %s hook %d priority %d", ch.Type, *ch.Hooknum, *ch.Priority)
}

// diff says what in have falls short of k's masquerade for addrs.
func diff(addrs []netip.Prefix, have state) []string {
	var out []string
	wantHook := hookOf(postChain())
	switch have.postHook {
	case "":
		out = append(out, fmt.Sprintf("chain %s %s is missing", TableName, PostroutingName))
	case wantHook:
	default:
		out = append(out, fmt.Sprintf("chain %s %s is %q, want %q", TableName, PostroutingName, have.postHook, wantHook))
	}
	if have.postHook != "" {
		for _, want := range postroutingExprs() {
			if d := nftexpr.Describe(want); !slices.Contains(have.postRules, d) {
				out = append(out, fmt.Sprintf("chain %s lacks %s", PostroutingName, d))
			}
		}
	}
	for _, a := range addrs {
		if !slices.Contains(have.masqRules, nftexpr.Describe(masqExprs(a))) {
			out = append(out, fmt.Sprintf("chain %s has no masquerade rule for %s", MasqChain, a))
		}
	}
	return out
}
