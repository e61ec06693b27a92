// Package nftables forwards host ports to pods with nf_tables, through netlink: one table of its own
// whose rules do not change with the mappings, and hash maps that hold the mappings. An ADD or DEL is
// one small transaction of map elements, whatever the number of mappings on the node.
//
//	table inet netloom_portmap {
//		comment "netloom portmap"
//		map dnat4 { type inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service }  # host port -> pod
//		map dnat4_any { type inet_proto . inet_service : ipv4_addr . inet_service }         # on every local address
//		map owner4, owner4_any { the same keys : owner }  # who owns each host port
//		map masqall4 { type ipv4_addr : owner }           # pods whose every connection is masqueraded
//		map masq4_16 { type ipv4_addr . ipv4_addr : owner }  # "network . pod", one map per prefix length in use
//		(and dnat6, dnat6_any, owner6, owner6_any, masqall6, masq6_64, ... for IPv6)
//		map attachments { type owner : digest }           # one record per attachment
//		(on Linux 6.10 and later every map also has "timeout 36500d": see Retirement below)
//		chain prerouting { type nat hook prerouting priority dstnat
//			meta nfproto ipv4 [conditionsV4] fib daddr type local jump hostports
//			meta nfproto ipv6 [conditionsV6] fib daddr type local jump hostports }
//		chain output { type nat hook output priority -100; the same two rules }
//		chain hostports {
//			dnat ip to meta l4proto . ip daddr . th dport map @dnat4
//			meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat4_any
//			(and the same for ip6) }
//		chain postrouting { type nat hook postrouting priority srcnat
//			ct status dnat ip daddr @masqall4 masquerade
//			ct status dnat ip6 daddr @masqall6 masquerade }
//		chain masq4_16 { type nat hook postrouting priority srcnat
//			ct status dnat ip saddr & 255.255.0.0 . ip daddr @masq4_16 masquerade }
//		(a chain like masq4_16 per map like it: masq4_8 for 127.0.0.0/8, masq6_128 for ::1, ...)
//	}
//
// A mapping on one address is looked up before one on every address, so the specific one wins for its
// address. With snat, a pod gets "its subnet . pod" and "127.0.0.0/8 . pod" (::1/128 for IPv6) in the
// masqN_L maps of those prefix lengths; with masqAll it goes into masqallN.
//
// Why not one interval map "subnet . pod" for masquerading: the kernel keeps such a map (set type
// pipapo) in lookup tables it rebuilds on every change; deleting one element took 0.15 ms in an empty
// map, 3.8 ms with 1,000 elements and 16 ms with 5,000 on the test kernel (6.18). Hash maps take some
// 10 µs at any size. A prefix length's map and chain are added by the first ADD that needs them and
// stay, like the rest of the table.
//
// Ownership. An owner is 16 bytes, the hashes of the network and of "ifname:containerID" (their hex,
// "<network>-<attachment>", is the hash pkg/firewall and the reference plugins write for the same
// attachment); nft prints it as an IPv6 address. Every element carries it, as data (ownerN, masq maps,
// attachments) or through the ownerN element of the same key (dnatN), and the comment "<owner hash>
// network/containerID/ifname". ADD adds owner elements next to the dnat ones without NLM_F_EXCL: the
// kernel takes an identical element as a no-op and refuses (EEXIST) one whose key exists with other
// data, so a host port of another attachment fails the transaction, atomically, even when both
// attachments would forward to the same pod address; only then does ADD look up its host keys, to name
// the owner in a *portmap.ConflictError. The attachments record holds a digest of everything the
// attachment owns: an ADD that changes an attachment's mappings collides with its old record and lists
// the maps to delete the old elements in the transaction that adds the new ones; a DEL can tell
// whether the few elements it looked up are all there is.
//
// Costs (see bench_test.go). ADD: a listing of the map names (is the table timed, which maps exist),
// one dump of the table's rules (a dozen) to see that the skeleton is intact, then one transaction; every dump also asks for the ruleset generation (see nftnl.Conn.Dump). DEL with hint: one round of single-element lookups (non-dump
// GETSETELEM) for the record and the hinted keys, a listing of the map names, one round for the pods'
// masquerade elements, then one transaction. Without hint, or when the digest says the lookups missed
// something, DEL lists every map (O(mappings on the node)); when the attachment has no record it stops
// after the first lookup. GC lists every map. Deletions are guarded: each element is first re-added
// with the data it was read with, in the same transaction, so an element that changed owner in between
// fails the transaction instead of being deleted, and the operation starts over. After a deletion,
// closing the netlink socket waits for an RCU grace period (the kernel flushes its deferred frees when
// an nf_tables socket is released): 5-15 ms here, and the same for any nftables client, nft included.
// A refused transaction (a conflict) waits for one in the kernel's abort. DEL and GC retire instead of
// deleting where they can, and wait for none (below).
//
// Retirement. On Linux 6.10 and later (nftnl.ExpiryUpdates) the table is made timed: every map has a
// timeout of 100 years (elemLifetime), which its elements, each added with that expiration, never
// reach. DEL and GC then retire an element instead of deleting it: they add it again as it was read,
// with an expiration of 1 ms (nftnl.Table.RetireElems). That is guarded like a deletion (other data
// fails the transaction), and the element stops matching packets, lookups and listings within a
// jiffy; the kernel frees it in the map's garbage collection, not after the transaction. So the
// transaction leaves the kernel nothing to free after a grace period, and closing the socket returns
// at once: a DEL took 15 ms, 12 of them that wait, and takes 2-3 ms (see the README's Performance).
// An element read back with less than retiringWithin left is gone for every purpose (CHECK, DEL,
// conflicts). An ADD whose transaction meets one with other data in its slots (a pod address or host
// port taken again at once) waits for it to expire, a tick of the kernel's clock, and tries again; the
// slow path deletes it. An ADD gives each element its full lifetime again, so one that it adds as it
// was (the same attachment, added again at once) is revived rather than left to expire. After retiring, DEL looks the elements up
// once: one the kernel did not retire is deleted. Evict and an ADD that replaces mappings delete,
// since they add the same keys in the same transaction. A table is timed as a whole, when every map
// of it has a timeout: one made untimed (by an earlier version, or on an older kernel) stays so, maps
// added to it later are untimed too, and its DEL and GC delete as before.
//
// Both families in one transaction: the table is inet, and ADD, DEL with a hint and the slow path of
// ADD each commit the IPv4 and the IPv6 elements together, so there is no state between the two
// families for a crash to leave (and no fault point between them, unlike a backend that commits per
// family). A sweep (GC, DEL without a usable hint) deletes in chunks of sweepChunk elements, which may
// split the families; a crash there leaves elements the next DEL or GC sweeps.
//
// The kernel is reached through pkg/nftnl, one socket per operation; CHECK reads the chains and rules
// through it too.
//
// The skeleton (table, chains, maps, rules) is added in the transaction of the first ADD that finds it
// missing or different; chains are flushed before their rules are added, so concurrent first ADDs leave
// one copy; an intact skeleton is never sent again (re-adding a hooked chain costs some 10 ms).
// conditionsV4/V6 are nftables expressions in text, which only nft compiles: when they are set and the
// installed hook rules carry other ones (a hash of the conditions is in the rule comment), ADD runs
// `nft -f -` once to rewrite the prerouting and output chains. Nothing else runs nft.
package nftables

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/portmap"
)

// retries bounds how often an operation starts over because another process changed the maps between
// its reading and its transaction.
const retries = 5

// sweepChunk is how many elements one transaction of a sweep deletes: the elements of one map go in one
// netlink attribute, which holds at most 64 KiB (an element with its comment takes up to some 200
// bytes), and a transaction must stay under the socket's send buffer (some 200 KiB).
const sweepChunk = 128

// Mapper is the nftables portmap.Mapper. Its methods work in the network namespace of the calling
// thread and open their own netlink socket, so any number of processes may use it at once.
type Mapper struct {
	// untimed makes a table this Mapper creates untimed even where the kernel updates expirations, as
	// earlier versions made it: for tests of a node upgraded in place.
	untimed bool
}

var _ portmap.Mapper = (*Mapper)(nil)

// New returns the nftables Mapper.
func New() *Mapper { return &Mapper{} }

// Available tells whether nf_tables answers over netlink here.
func Available() bool { return nftnl.Available() }

// Usable tells whether this backend can add forwarding here: nf_tables answers, and the kernel takes
// the masquerade rules, which look up a map's keys without its values (nftnl.MapLookups, Linux 6.5).
// On an older kernel portmap's default backend is iptables; DEL, CHECK and GC of this one still work.
func Usable() bool { return nftnl.MapLookups() && Available() }

// errOldKernel is Add's answer on a kernel that refuses the masquerade rules.
func errOldKernel() error {
	return conf.Invalid("backend", "the nftables backend needs Linux 6.5 or later: its masquerade rules look up "+
		"the keys of a map, which this kernel (%s) refuses; set \"backend\": \"iptables\", or leave \"backend\" out "+
		"for the default, which is iptables on this kernel", nftnl.Release())
}

// raced tells whether err may come from another process changing the maps or the skeleton meanwhile, so
// that reading again and retrying can succeed.
func raced(err error) bool {
	return errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOENT)
}

// Add installs k's mappings, replacing k's earlier ones, in one transaction.
func (m *Mapper) Add(k firewall.Key, ms []portmap.Mapping, o portmap.Options) error {
	if err := k.Check(); err != nil {
		return err
	}
	if !nftnl.MapLookups() {
		return errOldKernel()
	}
	if err := checkConditions(o); err != nil {
		return err
	}
	p, err := desired(k, ms, o)
	if err != nil {
		return err
	}
	if len(p.elems) == 0 {
		return m.Remove(k, nil)
	}
	c, err := nftnl.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	tm, err := listMaps(c, m)
	if err != nil {
		return err
	}
	skel, err := ensureSkeleton(c, o, p.lens, false, tm)
	if err != nil {
		return err
	}
	adds, err := addMsgs(p.elems, tm.timed)
	if err != nil {
		return err
	}
	// One transaction for both families: there is no in-between state, so no fault point here.
	err = c.Transact(append(skel, adds...))
	if err == nil || !raced(err) {
		return err
	}
	// Something is in the way: another attachment's host port (found by lookups), elements a DEL
	// retired a moment ago in p's slots (the same pod address or host port, taken again at once), or
	// else k's older mappings, or a masquerade element of a stale attachment that had k's pod address.
	if err := conflictOf(c, p); err != nil {
		return err
	}
	if tm.timed {
		clear, err := awaitRetiring(c, p)
		if err != nil {
			return err
		}
		if clear {
			if err = c.Transact(append(skel, adds...)); err == nil || !raced(err) {
				return err
			}
		}
	}
	return replace(c, m, p, o)
}

// retiringWait bounds how long Add waits for retired elements in its way to expire: they expire at the
// next tick of the kernel's clock, 10 ms apart at the slowest (HZ=100).
const retiringWait = 50 * time.Millisecond

// awaitRetiring looks up p's slots, waits until the elements being retired that hold any with other
// data have expired, and says whether p's slots are clear then: each empty or holding p's element as it
// is. Elements a DEL retired a moment before (the same pod address, or host port, taken again at once)
// are then out of p's way without the listing of every map that replace would do to delete them, or
// the grace period a deletion costs; anything else in the way is replace's.
func awaitRetiring(c *nftnl.Conn, p plan) (clear bool, err error) {
	want := p.elems
	for deadline := time.Now().Add(retiringWait); ; {
		qs := make([]nftnl.ElemQuery, len(want))
		for i, e := range want {
			qs[i] = e.query()
		}
		got, err := lookup(c, qs)
		if err != nil {
			return false, err
		}
		var retiring []elem
		for i, g := range got {
			switch {
			case g == nil || g.same(want[i]):
			case g.retiring:
				retiring = append(retiring, want[i])
			default:
				return false, nil
			}
		}
		if len(retiring) == 0 {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		want = retiring
		time.Sleep(time.Millisecond)
	}
}

// conflictOf looks up p's host keys and returns a ConflictError for the first one another attachment
// owns.
func conflictOf(c *nftnl.Conn, p plan) error {
	var owners []elem
	var qs []nftnl.ElemQuery
	for _, e := range p.elems {
		if strings.HasPrefix(e.set, "owner") {
			owners = append(owners, e)
			qs = append(qs, e.query(), dnatOfOwner(e).query())
		}
	}
	got, err := lookup(c, qs)
	if err != nil {
		return err
	}
	st := state{byID: map[string]elem{}}
	for _, g := range got {
		if g != nil && !g.retiring {
			st.byID[g.id()] = *g
		}
	}
	return st.conflict(plan{owner: p.owner, elems: owners})
}

// dnatOfOwner is the dnat element's slot of an owner element: same key, the map of the same family.
func dnatOfOwner(e elem) elem {
	return elem{set: "dnat" + strings.TrimPrefix(e.set, "owner"), key: e.key}
}

// Evict removes every element of the owner c.OwnerRef names (the hex owner ID that conflict put
// there).
func (m *Mapper) Evict(c *portmap.ConflictError) error {
	b, err := hex.DecodeString(c.OwnerRef)
	if err != nil || len(b) != ownerLen {
		return fmt.Errorf("evict %s: %q is not an owner of the nftables backend", c.Owner, c.OwnerRef)
	}
	conn, err := nftnl.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	// Deleted, not retired: the caller adds the same keys next, for another attachment.
	return remove(conn, m, owner(b), []portmap.HostKey{c.Key}, false)
}

var _ portmap.Evicter = (*Mapper)(nil)

// replace lists the maps, fails with a ConflictError when another attachment owns one of p's host
// keys, and otherwise deletes p's owner's other elements and others' masquerade elements for p's pod
// addresses in the transaction that adds p.
func replace(c *nftnl.Conn, m *Mapper, p plan, o portmap.Options) error {
	for attempt := 1; ; attempt++ {
		st, err := readState(c, m)
		if err != nil {
			return err
		}
		if err := st.conflict(p); err != nil {
			return err
		}
		// A map may be missing under intact rules (nothing refers to the owner maps), so the slow
		// path sends every missing map.
		skel, err := ensureSkeleton(c, o, p.lens, true, st.maps)
		if err != nil {
			return err
		}
		// Deleted, not retired: p adds keys in the same slots.
		dels, err := removeMsgs(st.inTheWay(p))
		if err != nil {
			return err
		}
		adds, err := addMsgs(p.elems, st.maps.timed)
		if err != nil {
			return err
		}
		err = c.Transact(slices.Concat(skel, dels, adds))
		if err == nil || !raced(err) || attempt == retries {
			return err
		}
	}
}

// ensureSkeleton compares the installed rules with the skeleton plus the chains of lens and returns
// the messages that add what is missing or different: none when all is intact, unless force. Hook rules
// with conditions are written by nft, now.
func ensureSkeleton(c *nftnl.Conn, o portmap.Options, lens []masqLen, force bool, tm maps) ([]nftnl.Msg, error) {
	installed, err := c.Rules(table(), "")
	if err != nil {
		return nil, err
	}
	want, chains := skeletonRules(o), chainDefs()
	for _, l := range lens {
		want = append(want, l.rule())
		chains = append(chains, l.chainDef())
	}
	stale := staleChains(installed, want, chains)
	if viaNFT(o) && (stale[chainPrerouting] || stale[chainOutput]) {
		if err := runNFT(nftScript(o)); err != nil {
			return nil, err
		}
		delete(stale, chainPrerouting)
		delete(stale, chainOutput)
	}
	return skeletonMsgs(stale, want, chains, lens, force, tm)
}

// staleChains returns the chains whose rules (by comment, in order) are not want's.
func staleChains(installed []nftnl.Rule, want []ruleDef, chains []nftnl.Chain) map[string]bool {
	have, need := map[string][]string{}, map[string][]string{}
	for _, r := range installed {
		have[r.Chain] = append(have[r.Chain], r.Comment)
	}
	for _, r := range want {
		need[r.chain] = append(need[r.chain], r.comment)
	}
	stale := map[string]bool{}
	for _, ch := range chains {
		if !slices.Equal(have[ch.Name], need[ch.Name]) {
			stale[ch.Name] = true
		}
	}
	return stale
}

// skeletonMsgs adds the table and the maps tm lacks when a chain of the fixed skeleton is stale (or
// force), the stale chains (a no-op for those that exist) and the missing maps of stale masqLen chains,
// and rewrites the stale chains' rules. Maps that exist are not sent again: one made before the table
// was timed, or after, would refuse the other kind (EEXIST).
func skeletonMsgs(stale map[string]bool, want []ruleDef, chains []nftnl.Chain, lens []masqLen, force bool, tm maps) ([]nftnl.Msg, error) {
	t := table()
	fixed := force
	for _, ch := range chainDefs() {
		fixed = fixed || stale[ch.Name]
	}
	var b nftnl.Batch
	if fixed {
		b.Add(t.Add(tableComment))
		for i, s := range setDefs() {
			if !tm.exist[s.name] {
				b.Add(t.AddSet(s.set(uint32(i+1), tm.timed)))
			}
		}
	}
	for i, l := range lens {
		if (force || stale[l.name()]) && !tm.exist[l.name()] {
			b.Add(t.AddSet(l.setDef().set(uint32(len(setDefs())+i+1), tm.timed)))
		}
	}
	for _, ch := range chains {
		if stale[ch.Name] {
			b.Add(t.AddChain(ch))
		}
	}
	for _, ch := range chains {
		if !stale[ch.Name] {
			continue
		}
		b.Add(t.FlushChain(ch.Name))
		for _, r := range want {
			if r.chain == ch.Name {
				b.Add(t.AddRule(r.rule()))
			}
		}
	}
	return b.Msgs()
}

func runNFT(script string) error {
	path, err := exec.LookPath("nft")
	if err != nil {
		return fmt.Errorf("conditionsV4/conditionsV6 are nftables expressions that only the nft command compiles: %w", err)
	}
	cmd := exec.Command(path, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f - (hook rules with conditionsV4/conditionsV6): %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// unique drops the elements whose slot came before.
func unique(es []elem) []elem {
	seen := map[string]bool{}
	var out []elem
	for _, e := range es {
		if !seen[e.id()] {
			seen[e.id()] = true
			out = append(out, e)
		}
	}
	return out
}

// bySet groups es by set, keeping the first-seen order of sets and dropping repeated slots.
func bySet(es []elem) ([]string, map[string][]elem) {
	var order []string
	groups := map[string][]elem{}
	for _, e := range unique(es) {
		if _, ok := groups[e.set]; !ok {
			order = append(order, e.set)
		}
		groups[e.set] = append(groups[e.set], e)
	}
	return order, groups
}

// Remove deletes everything k installed. With a hint it looks up only the hinted keys and the
// masquerade elements of the pods they forward to; when the attachment's record says that is not all,
// or without hint, it lists the maps.
func (m *Mapper) Remove(k firewall.Key, hint []portmap.HostKey) error {
	if err := k.Check(); err != nil {
		return err
	}
	c, err := nftnl.Dial()
	if err != nil {
		return err
	}
	// After a deletion, closing the socket waits for an RCU grace period (see nftnl.Conn.Close); after
	// a retirement it does not.
	defer c.Close()
	return remove(c, m, ownerOf(k), hint, true)
}

// remove drops what o owns: retired in a timed table when retire, deleted otherwise.
func remove(c *nftnl.Conn, m *Mapper, o owner, hint []portmap.HostKey, retire bool) error {
	for attempt := 1; ; attempt++ {
		found, timed, complete, err := findOwned(c, m, o, hint)
		if err != nil {
			return err
		}
		if !complete {
			return sweep(c, m, func(x owner) bool { return x == o }, retire)
		}
		if len(found) == 0 {
			return nil
		}
		msgs, err := dropMsgs(found, timed, retire)
		if err != nil {
			return err
		}
		err = c.Transact(msgs)
		if err == nil && timed && retire {
			err = deleteUnretired(c, found)
		}
		if err == nil || !raced(err) || attempt == retries {
			return err
		}
	}
}

// deleteUnretired looks up es, just retired, and deletes those the kernel did not retire: a kernel that
// took the retirement as a no-op (one older than ExpiryUpdates says, or changed) would leave them
// forwarding. On a kernel that retires, this is one round of lookups that find nothing or retiring
// elements.
func deleteUnretired(c *nftnl.Conn, es []elem) error {
	qs := make([]nftnl.ElemQuery, len(es))
	for i, e := range es {
		qs[i] = e.query()
	}
	got, err := lookup(c, qs)
	if err != nil {
		return err
	}
	var stay []elem
	for _, g := range got {
		if g != nil && !g.retiring {
			stay = append(stay, *g)
		}
	}
	if len(stay) == 0 {
		return nil
	}
	msgs, err := removeMsgs(stay)
	if err != nil {
		return err
	}
	return c.Transact(msgs)
}

// findOwned looks up o's record, the hinted keys and the masquerade elements of the pods they forward
// to (in masqallN, and in every masqN_L map there is, the pod's /L network). complete says whether
// found is all o owns: its digest matches the record, or there is neither a record nor anything found.
//
// Elements being retired count as gone. timed says whether the table is timed; it is known only when
// found is complete and not empty.
func findOwned(c *nftnl.Conn, m *Mapper, o owner, hint []portmap.HostKey) (found []elem, timed, complete bool, err error) {
	rec := elem{set: setAttachments, key: o[:]}
	res, err := lookupLive(c, append([]nftnl.ElemQuery{rec.query()}, hintQueries(hint)...))
	if err != nil {
		return nil, false, false, err
	}
	found, pods := ownedOfHint(o, res[1:])
	if res[0] == nil {
		return nil, false, len(found) == 0, nil
	}
	if len(hint) == 0 {
		return nil, false, false, nil
	}
	tm, err := listMaps(c, m)
	if err != nil {
		return nil, false, false, err
	}
	masq, err := lookupLive(c, masqQueries(pods, tm.names))
	if err != nil {
		return nil, false, false, err
	}
	for _, e := range masq {
		if e != nil && bytes.Equal(e.data, o[:]) {
			found = append(found, *e)
		}
	}
	found = unique(found)
	complete = bytes.Equal(elemsDigest(found), res[0].data)
	return append(found, *res[0]), tm.timed, complete, nil
}

// lookupLive is lookup with the elements being retired taken as missing.
func lookupLive(c *nftnl.Conn, qs []nftnl.ElemQuery) ([]*elem, error) {
	got, err := lookup(c, qs)
	for i, g := range got {
		if g != nil && g.retiring {
			got[i] = nil
		}
	}
	return got, err
}

// ownedOfHint picks o's elements from the answers to hintQueries (owner and dnat element of each key,
// in pairs) and the pods they forward to.
func ownedOfHint(o owner, res []*elem) (found []elem, pods []netip.Addr) {
	for i := 0; i+1 < len(res); i += 2 {
		ow, dn := res[i], res[i+1]
		if ow == nil || !bytes.Equal(ow.data, o[:]) {
			continue
		}
		found = append(found, *ow)
		if dn != nil {
			found = append(found, *dn)
			if pod, ok := podOf(*dn); ok && !slices.Contains(pods, pod) {
				pods = append(pods, pod)
			}
		}
	}
	return found, pods
}

// masqQueries looks up the masquerade elements pods may have: in masqallN, and in each masqN_L map of
// sets, the pod's own /L network and loopback's when it is a /L.
func masqQueries(pods []netip.Addr, sets []string) []nftnl.ElemQuery {
	var qs []nftnl.ElemQuery
	for _, pod := range pods {
		f := famOf(pod)
		qs = append(qs, nftnl.ElemQuery{Set: masqAllSet(f), Key: pod.AsSlice()})
		for _, name := range sets {
			l, ok := parseMasqLen(name)
			if !ok || l.f != f {
				continue
			}
			srcs := []netip.Addr{netip.PrefixFrom(pod, l.bits).Masked().Addr()}
			if lo := f.loopback(); lo.Bits() == l.bits {
				srcs = append(srcs, lo.Addr())
			}
			for _, src := range srcs {
				qs = append(qs, nftnl.ElemQuery{Set: name, Key: append(src.AsSlice(), pod.AsSlice()...)})
			}
		}
	}
	return qs
}

// hintQueries looks up the owner and dnat elements of each hinted key, in pairs, in every family the
// key can be in.
func hintQueries(hint []portmap.HostKey) []nftnl.ElemQuery {
	var qs []nftnl.ElemQuery
	seen := map[string]bool{}
	for _, h := range hint {
		proto, ok := protocolNumber(h.Protocol)
		host := h.HostIP
		if !ok || h.HostPort == 0 || host.Is4In6() {
			continue
		}
		if host.IsValid() && host.IsUnspecified() {
			host = netip.Addr{}
		}
		all := families()
		fams := all[:]
		if host.IsValid() {
			fams = []fam{famOf(host)}
		}
		key := hostKeyBytes(proto, host, h.HostPort)
		for _, f := range fams {
			set := ownerSet(f, !host.IsValid())
			if id := set + hex.EncodeToString(key); !seen[id] {
				seen[id] = true
				qs = append(qs, nftnl.ElemQuery{Set: set, Key: key}, nftnl.ElemQuery{Set: dnatSet(f, !host.IsValid()), Key: key})
			}
		}
	}
	return qs
}

// podOf is the pod address a dnat element forwards to.
func podOf(e elem) (netip.Addr, bool) {
	n := 4
	if strings.HasPrefix(e.set, "dnat6") {
		n = 16
	}
	if len(e.data) < n {
		return netip.Addr{}, false
	}
	return netip.AddrFromSlice(e.data[:n])
}

// sweep drops every element whose owner matches, from a listing of all maps: retired in a timed table
// when retire, deleted otherwise.
func sweep(c *nftnl.Conn, m *Mapper, match func(owner) bool, retire bool) error {
	for attempt := 1; ; attempt++ {
		st, err := readState(c, m)
		if err != nil {
			return err
		}
		var doomed []elem
		for _, e := range st.elems {
			if o, ok := st.ownerOf(e); ok && match(o) && !e.retiring {
				doomed = append(doomed, e)
			}
		}
		for len(doomed) > 0 && err == nil {
			n := min(len(doomed), sweepChunk)
			var msgs []nftnl.Msg
			if msgs, err = dropMsgs(doomed[:n], st.maps.timed, retire); err == nil {
				err = c.Transact(msgs)
			}
			if err == nil && st.maps.timed && retire {
				err = deleteUnretired(c, doomed[:n])
			}
			doomed = doomed[n:]
		}
		if err == nil || !raced(err) || attempt == retries {
			return err
		}
	}
}

// GC removes the mappings of network whose attachment is not in valid.
func (m *Mapper) GC(network string, valid map[conf.Attachment]bool) error {
	c, err := nftnl.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return sweep(c, m, staleOf(network, valid), true)
}

// staleOf matches the owners of network that are not in valid.
func staleOf(network string, valid map[conf.Attachment]bool) func(owner) bool {
	keep := make(map[owner]bool, len(valid))
	for a := range valid {
		keep[ownerOf(firewall.Key{Network: network, ContainerID: a.ContainerID, IfName: a.IfName})] = true
	}
	nh := networkHash(network)
	return func(o owner) bool { return [8]byte(o[:8]) == nh && !keep[o] }
}

// state is every element of every map.
type state struct {
	elems []elem
	byID  map[string]elem
	maps  maps
}

// ownerOf finds who owns e: its data in owner, masq and attachments maps, the owner element of the
// same key for a dnat element, and the comment for a dnat element without one.
func (st state) ownerOf(e elem) (owner, bool) {
	switch {
	case e.set == setAttachments:
		return ownerFrom(e.key)
	case strings.HasPrefix(e.set, "dnat"):
		if ow, ok := st.byID[elem{set: "owner" + strings.TrimPrefix(e.set, "dnat"), key: e.key}.id()]; ok {
			return ownerFrom(ow.data)
		}
		return ownerFromComment(e.comment)
	default:
		return ownerFrom(e.data)
	}
}

func ownerFrom(b []byte) (owner, bool) {
	if len(b) != ownerLen {
		return owner{}, false
	}
	return owner(b), true
}

func ownerFromComment(c string) (owner, bool) {
	h, _, _ := strings.Cut(c, " ")
	a, b, ok := strings.Cut(h, "-")
	x, errA := hex.DecodeString(a)
	y, errB := hex.DecodeString(b)
	if !ok || errA != nil || errB != nil || len(x) != 8 || len(y) != 8 {
		return owner{}, false
	}
	return ownerFrom(append(x, y...))
}

// conflict returns a ConflictError for the first host key of p that another attachment owns.
func (st state) conflict(p plan) error {
	for _, e := range p.elems {
		if !strings.HasPrefix(e.set, "owner") {
			continue
		}
		if cur, ok := st.byID[e.id()]; ok && !cur.retiring && !bytes.Equal(cur.data, p.owner[:]) {
			c := &portmap.ConflictError{Key: e.hostKey, Owner: ownerName(cur.comment), OwnerRef: hex.EncodeToString(cur.data)}
			if dn, ok := st.byID[dnatOfOwner(e).id()]; ok {
				c.PodIP, _ = podOf(dn)
			}
			return c
		}
	}
	return nil
}

// inTheWay lists what must go for p to be added: p's owner's elements that p does not have, and
// elements of others in p's slots where that is no conflict: a dnat element without owner element (left
// over by hand), a masquerade element for p's pod address (its owner is stale: the address is p's now),
// and any element being retired. An element p has as it is stays (being retired, p's addition revives
// it).
func (st state) inTheWay(p plan) []elem {
	want := map[string]elem{}
	for _, e := range p.elems {
		want[e.id()] = e
	}
	var out []elem
	for _, e := range st.elems {
		w, mySlot := want[e.id()]
		if mySlot && w.same(e) {
			continue
		}
		if e.retiring && !mySlot {
			continue // it expires by itself
		}
		if o, ok := st.ownerOf(e); (ok && o == p.owner) || (mySlot && (e.retiring || !strings.HasPrefix(e.set, "owner"))) {
			out = append(out, e)
		}
	}
	return out
}

// Check reports what of k's mappings is missing or different, and what of the skeleton they need.
func (m *Mapper) Check(k firewall.Key, ms []portmap.Mapping, o portmap.Options) error {
	if err := k.Check(); err != nil {
		return err
	}
	p, err := desired(k, ms, o)
	if err != nil {
		return err
	}
	c, err := nftnl.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	problems, err := checkSkeleton(c, p.lens)
	if err != nil {
		return err
	}
	qs := make([]nftnl.ElemQuery, len(p.elems))
	for i, e := range p.elems {
		qs[i] = e.query()
	}
	got, err := lookupLive(c, qs)
	if err != nil {
		return err
	}
	problems = append(problems, compareElems(p, got)...)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// compareElems says how got (looked up by want's keys) differs from want.
func compareElems(p plan, got []*elem) []string {
	var out []string
	for i, w := range p.elems {
		g := got[i]
		what := describeElem(w)
		switch {
		case g == nil:
			out = append(out, what+" is missing")
		case w.set == setAttachments:
			if !w.same(*g) {
				out = append(out, what+" differs: the attachment owns other mappings than these")
			}
		case strings.HasPrefix(w.set, "owner") && !bytes.Equal(g.data, w.data):
			out = append(out, fmt.Sprintf("%s belongs to %s", what, ownerName(g.comment)))
		case !w.same(*g):
			out = append(out, fmt.Sprintf("%s is %s", what, describeElem(*g)))
		}
	}
	return out
}

// describeElem renders an element for a person.
func describeElem(e elem) string {
	switch {
	case strings.HasPrefix(e.set, "owner"):
		return fmt.Sprintf("owner of %v in %s", parseHostKey(e.set, e.key), e.set)
	case strings.HasPrefix(e.set, "dnat"):
		target := "?"
		if pod, ok := podOf(e); ok && len(e.data) >= pod.BitLen()/8+portLen {
			n := pod.BitLen() / 8
			target = netip.AddrPortFrom(pod, uint16(e.data[n])<<8|uint16(e.data[n+1])).String()
		}
		return fmt.Sprintf("forwarding of %v to %s in %s", parseHostKey(e.set, e.key), target, e.set)
	case strings.HasPrefix(e.set, "masqall"):
		pod, _ := netip.AddrFromSlice(e.key)
		return fmt.Sprintf("masquerade of every source to %s in %s", pod, e.set)
	case strings.HasPrefix(e.set, "masq"):
		l, _ := parseMasqLen(e.set)
		n := len(e.key) / 2
		from, _ := netip.AddrFromSlice(e.key[:n])
		pod, _ := netip.AddrFromSlice(e.key[n:])
		return fmt.Sprintf("masquerade of %s to %s in %s", netip.PrefixFrom(from, l.bits), pod, e.set)
	}
	return "record in " + e.set
}
