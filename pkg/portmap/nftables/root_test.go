package nftables

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/test/harness"
)

var snat = portmap.Options{SNAT: true}

// newNS is a fresh network namespace with loopback up: no test sees the host's ruleset or another's.
func newNS(t testing.TB) harness.NetNS {
	t.Helper()
	harness.RequireRoot(t)
	if !nftnl.MapLookups() {
		t.Skipf("the nftables backend needs Linux 6.5 (kernel %s): Add refuses, and portmap uses iptables here; TestVMPortmapDefaultBackend covers that in the VM lane", nftnl.Release())
	}
	n := harness.NewNetNS(t, "pmnft")
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

func do(t testing.TB, n harness.NetNS, f func() error) {
	t.Helper()
	if err := n.Do(f); err != nil {
		t.Fatal(err)
	}
}

// live lists every element of the table but those being retired (gone, but for the kernel's garbage
// collection).
func live(t testing.TB, n harness.NetNS) []elem {
	t.Helper()
	var out []elem
	do(t, n, func() error {
		c, err := nftnl.Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		st, err := readState(c, New())
		for _, e := range st.elems {
			if !e.retiring {
				out = append(out, e)
			}
		}
		return err
	})
	return out
}

// elems lists every live element of the table, rendered by show, sorted.
func elems(t testing.TB, n harness.NetNS) []string {
	t.Helper()
	var out []string
	for _, e := range live(t, n) {
		out = append(out, show(e))
	}
	slices.Sort(out)
	return out
}

// ownedBy counts the live elements whose comment is k's.
func ownedBy(t testing.TB, n harness.NetNS, k firewall.Key) int {
	t.Helper()
	count := 0
	for _, e := range live(t, n) {
		if e.comment == comment(k) {
			count++
		}
	}
	return count
}

// Pod A: tcp/8080 on every address, both families, and udp 53 on one IPv4 address.
var (
	podA = []portmap.Mapping{
		mapping("tcp", "", 8080, "10.88.0.5/16", 80),
		mapping("udp", "192.0.2.1", 53, "10.88.0.5/16", 5353),
		mapping("tcp", "", 8080, "fd88::5/64", 80),
	}
	podB = []portmap.Mapping{mapping("tcp", "", 9090, "10.88.0.6/16", 90), mapping("tcp", "", 9090, "fd88::6/64", 90)}
)

func hostKeys(ms []portmap.Mapping) []portmap.HostKey {
	var out []portmap.HostKey
	for _, m := range ms {
		if !slices.Contains(out, m.Key()) {
			out = append(out, m.Key())
		}
	}
	return out
}

func TestAddCheckRemove(t *testing.T) {
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	do(t, n, func() error { return m.Add(keyB, podB, snat) })
	do(t, n, func() error { return m.Check(keyA, podA, snat) })
	do(t, n, func() error { return m.Check(keyB, podB, snat) })

	// A timed table's elements show how long they have left: "... expires 36499d23h59m59s976ms ...".
	ruleset := regexp.MustCompile(` expires \S+`).ReplaceAllString(n.Run(t, "nft", "list", "table", "inet", TableName), "")
	for _, want := range []string{
		`comment "netloom portmap"`,
		`tcp . 8080 comment "d23676b4f2d9fe04-f4d01f2ef4b92245 mynet/c1/eth0" : 10.88.0.5 . 80`,
		`udp . 192.0.2.1 . 53 comment "d23676b4f2d9fe04-f4d01f2ef4b92245 mynet/c1/eth0" : 10.88.0.5 . 5353`,
		`tcp . 8080 comment "d23676b4f2d9fe04-f4d01f2ef4b92245 mynet/c1/eth0" : fd88::5 . 80`,
		`10.88.0.0 . 10.88.0.5 comment "d23676b4f2d9fe04-f4d01f2ef4b92245 mynet/c1/eth0" : d236:76b4:f2d9:fe04:f4d0:1f2e:f4b9:2245`,
		`dnat ip to meta l4proto . ip daddr . th dport map @dnat4`,
		`ct status dnat ip6 saddr & ffff:ffff:ffff:ffff:: . ip6 daddr @masq6_64 masquerade`,
		`ct status dnat ip saddr & 255.0.0.0 . ip daddr @masq4_8 masquerade`,
	} {
		if !strings.Contains(ruleset, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, ruleset)
		}
	}
	if got := ownedBy(t, n, keyA); got != 11 {
		t.Errorf("%d elements of A, want 11 (3 owner, 3 dnat, 4 masq, 1 record)", got)
	}

	// Re-adding the same is a no-op.
	before := elems(t, n)
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	if after := elems(t, n); !slices.Equal(before, after) {
		t.Errorf("re-adding changed the maps:\n%s\nto\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}

	do(t, n, func() error { return m.Remove(keyA, hostKeys(podA)) })
	if got := ownedBy(t, n, keyA); got != 0 {
		t.Errorf("%d elements of A left after Remove", got)
	}
	if got := ownedBy(t, n, keyB); got != 9 {
		t.Errorf("B has %d elements after A's Remove, want 9", got)
	}
	do(t, n, func() error { return m.Check(keyB, podB, snat) })
	if err := n.Do(func() error { return m.Check(keyA, podA, snat) }); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Check after Remove: %v", err)
	}
	// Idempotent, with and without hint.
	do(t, n, func() error { return m.Remove(keyA, hostKeys(podA)) })
	do(t, n, func() error { return m.Remove(keyA, nil) })
	do(t, n, func() error { return m.Remove(keyB, nil) })
	if got := elems(t, n); len(got) != 0 {
		t.Errorf("elements left:\n%s", strings.Join(got, "\n"))
	}
	// Nothing at all: no table.
	empty := newNS(t)
	do(t, empty, func() error { return m.Remove(keyA, hostKeys(podA)) })
	do(t, empty, func() error { return m.Remove(keyA, nil) })
	do(t, empty, func() error { return m.GC("mynet", nil) })
}

func TestRemoveFindsEverything(t *testing.T) {
	other := []portmap.Mapping{mapping("tcp", "", 7070, "10.88.0.9/16", 70)}
	for _, tc := range []struct {
		name string
		hint []portmap.HostKey
	}{
		{"hint", hostKeys(podA)},
		{"no hint", nil},
		{"partial hint", hostKeys(podA)[:1]},
		{"others' keys", hostKeys(other)},
		{"hint with all addresses for a specific key", []portmap.HostKey{{Protocol: "udp", HostPort: 53}, {Protocol: "tcp", HostPort: 8080}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNS(t)
			m := New()
			do(t, n, func() error { return m.Add(keyC, other, snat) })
			want := elems(t, n)
			do(t, n, func() error { return m.Add(keyA, podA, snat) })
			do(t, n, func() error { return m.Remove(keyA, tc.hint) })
			if got := elems(t, n); !slices.Equal(got, want) {
				t.Errorf("after Remove:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// A DEL with the right hint finds all the attachment owns by lookups, without listing the maps.
func TestRemoveWithHintNeedsNoListing(t *testing.T) {
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyB, podB, snat) })
	for _, tc := range []struct {
		name     string
		o        portmap.Options
		hint     []portmap.HostKey
		complete bool
		found    int
	}{
		{"snat", snat, hostKeys(podA), true, 11}, // 3 owner, 3 dnat, 4 masquerade, the record
		{"no snat", portmap.Options{}, hostKeys(podA), true, 7},
		{"masqAll", portmap.Options{MasqAll: true}, hostKeys(podA), true, 9},
		{"pod subnet unknown", snat, hostKeys(podA), true, 11},
		{"partial hint", snat, hostKeys(podA)[1:], false, 0},
		{"no hint", snat, nil, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := podA
			if tc.name == "pod subnet unknown" {
				ms = slices.Clone(podA)
				for i := range ms {
					ms[i].PodSubnet = netip.Prefix{}
				}
			}
			do(t, n, func() error { return m.Add(keyA, ms, tc.o) })
			do(t, n, func() error {
				c, err := nftnl.Dial()
				if err != nil {
					return err
				}
				defer c.Close()
				found, _, complete, err := findOwned(c, m, ownerOf(keyA), tc.hint)
				if err != nil {
					return err
				}
				if complete != tc.complete || (complete && len(found) != tc.found) {
					t.Errorf("complete %v with %d elements, want %v with %d:\n%s", complete, len(found), tc.complete, tc.found, showAll(found))
				}
				return nil
			})
			do(t, n, func() error { return m.Remove(keyA, tc.hint) })
			if got := ownedBy(t, n, keyA); got != 0 {
				t.Errorf("%d elements of A left", got)
			}
		})
	}
}

func TestConflict(t *testing.T) {
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	before := elems(t, n)
	for _, tc := range []struct {
		name string
		ms   []portmap.Mapping
		key  string
	}{
		{"same port, all addresses", []portmap.Mapping{mapping("tcp", "", 1, "10.88.0.6/16", 1), mapping("tcp", "", 8080, "10.88.0.6/16", 80)}, "tcp/8080 (all addresses)"},
		{"same port, same pod address and port", []portmap.Mapping{mapping("tcp", "", 8080, "10.88.0.5/16", 80)}, "tcp/8080 (all addresses)"},
		{"same host address", []portmap.Mapping{mapping("udp", "192.0.2.1", 53, "10.88.0.6/16", 53)}, "udp 192.0.2.1:53"},
		{"IPv6 only", []portmap.Mapping{mapping("tcp", "", 8080, "fd88::6/64", 80)}, "tcp/8080 (all addresses)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := n.Do(func() error { return m.Add(keyB, tc.ms, snat) })
			var ce *portmap.ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("Add = %v, want a ConflictError", err)
			}
			if ce.Key.String() != tc.key || ce.Owner != "mynet/c1/eth0" {
				t.Errorf("conflict on %v owned by %q, want %s owned by mynet/c1/eth0", ce.Key, ce.Owner, tc.key)
			}
			if after := elems(t, n); !slices.Equal(before, after) {
				t.Errorf("a refused Add changed the maps:\n%s", strings.Join(after, "\n"))
			}
		})
	}
	// Another address, another protocol, or one address next to all addresses: no conflict.
	ok := []portmap.Mapping{
		mapping("udp", "", 8080, "10.88.0.6/16", 80),
		mapping("tcp", "10.0.0.1", 8080, "10.88.0.6/16", 81),
		mapping("udp", "192.0.2.2", 53, "10.88.0.6/16", 53),
	}
	do(t, n, func() error { return m.Add(keyB, ok, snat) })
	do(t, n, func() error { return m.Check(keyA, podA, snat) })
	do(t, n, func() error { return m.Check(keyB, ok, snat) })
}

func TestAddReplacesEarlierMappings(t *testing.T) {
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyB, podB, snat) })
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	moved := []portmap.Mapping{mapping("tcp", "", 8080, "10.88.0.5/16", 8081), mapping("tcp", "", 8443, "10.88.0.5/16", 443)}
	do(t, n, func() error { return m.Add(keyA, moved, portmap.Options{}) })
	do(t, n, func() error { return m.Check(keyA, moved, portmap.Options{}) })
	do(t, n, func() error { return m.Check(keyB, podB, snat) })
	if err := n.Do(func() error { return m.Check(keyA, podA, snat) }); err == nil {
		t.Error("Check of the replaced mappings passes")
	}
	if got := ownedBy(t, n, keyA); got != 5 {
		t.Errorf("A has %d elements, want 5 (2 owner, 2 dnat, 1 record)", got)
	}
	do(t, n, func() error { return m.Remove(keyA, hostKeys(moved)) })
	if got := ownedBy(t, n, keyA); got != 0 {
		t.Errorf("%d elements of A left", got)
	}
}

func TestPodAddressOfAStaleAttachment(t *testing.T) {
	// A's pod is gone but its DEL never ran; B now has A's address. B's ADD takes over the masquerade
	// elements of the address, and A's later DEL leaves them to B.
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	b := []portmap.Mapping{mapping("tcp", "", 7000, "10.88.0.5/16", 70)}
	do(t, n, func() error { return m.Add(keyB, b, portmap.Options{MasqAll: true}) })
	do(t, n, func() error { return m.Check(keyB, b, portmap.Options{MasqAll: true}) })
	do(t, n, func() error { return m.Remove(keyA, hostKeys(podA)) })
	do(t, n, func() error { return m.Check(keyB, b, portmap.Options{MasqAll: true}) })
	if got := ownedBy(t, n, keyA); got != 0 {
		t.Errorf("%d elements of A left", got)
	}
}

func TestGC(t *testing.T) {
	n := newNS(t)
	m := New()
	keyD := firewall.Key{Network: "mynet", ContainerID: "c4", IfName: "net1"}
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	do(t, n, func() error { return m.Add(keyB, podB, snat) })
	do(t, n, func() error { return m.Add(keyC, []portmap.Mapping{mapping("tcp", "", 1, "10.99.0.5/24", 1)}, snat) })
	do(t, n, func() error { return m.Add(keyD, []portmap.Mapping{mapping("tcp", "", 2, "10.88.0.7/16", 1)}, snat) })
	do(t, n, func() error { return m.GC("mynet", map[conf.Attachment]bool{keyB.Attachment(): true}) })
	for k, want := range map[firewall.Key]bool{keyA: false, keyB: true, keyC: true, keyD: false} {
		if got := ownedBy(t, n, k) > 0; got != want {
			t.Errorf("after GC, %v has elements: %v, want %v", k, got, want)
		}
	}
}

func TestGCOfManyAttachments(t *testing.T) {
	const pods = 120 // more elements than one sweep transaction deletes
	n := newNS(t)
	m := New()
	do(t, n, func() error {
		for i := range pods {
			k := firewall.Key{Network: "big", ContainerID: fmt.Sprintf("p%03d", i), IfName: "eth0"}
			ms := []portmap.Mapping{
				mapping("tcp", "", uint16(30000+i), fmt.Sprintf("10.77.0.%d/16", i+1), 80),
				mapping("tcp", "", uint16(30000+i), fmt.Sprintf("fd77::%x/64", i+1), 80),
			}
			if err := m.Add(k, ms, snat); err != nil {
				return err
			}
		}
		return m.Add(keyC, []portmap.Mapping{mapping("tcp", "", 1, "10.99.0.5/24", 1)}, snat)
	})
	want := ownedBy(t, n, keyC)
	do(t, n, func() error { return m.GC("big", nil) })
	if got := elems(t, n); len(got) != want {
		t.Errorf("%d elements after GC, want keyC's %d:\n%s", len(got), want, strings.Join(got, "\n"))
	}
}

// A deletion is guarded: an element that changed owner since it was read stays, and the transaction
// fails.
func TestGuardedDeletion(t *testing.T) {
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	var stale []elem
	do(t, n, func() error {
		c, err := nftnl.Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		stale, _, _, err = findOwned(c, m, ownerOf(keyA), hostKeys(podA))
		return err
	})
	do(t, n, func() error { return m.Remove(keyA, hostKeys(podA)) })
	do(t, n, func() error { return m.Add(keyB, podA, snat) })
	before := elems(t, n)
	err := n.Do(func() error {
		c, err := nftnl.Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		msgs, err := removeMsgs(stale)
		if err != nil {
			return err
		}
		return c.Transact(msgs)
	})
	if !raced(err) {
		t.Errorf("deleting A's elements after B took them: %v, want EEXIST", err)
	}
	if after := elems(t, n); !slices.Equal(before, after) {
		t.Errorf("B's elements changed:\n%s", strings.Join(after, "\n"))
	}
	do(t, n, func() error { return m.Check(keyB, podA, snat) })
}

func TestConcurrentAdds(t *testing.T) {
	const pods = 32
	n := newNS(t) // no table yet: every ADD races to make the skeleton
	m := New()
	keys := make([]firewall.Key, pods)
	maps := make([][]portmap.Mapping, pods)
	for i := range keys {
		keys[i] = firewall.Key{Network: "mynet", ContainerID: fmt.Sprintf("pod%02d", i), IfName: "eth0"}
		maps[i] = []portmap.Mapping{
			mapping("tcp", "", uint16(10000+i), fmt.Sprintf("10.88.1.%d/16", i+1), 80),
			mapping("udp", "", uint16(10000+i), fmt.Sprintf("fd88::1:%x/64", i+1), 53),
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, pods)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Do(func() error { return m.Add(keys[i], maps[i], snat) })
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Add %v: %v", keys[i], err)
		}
	}
	for i := range keys {
		do(t, n, func() error { return m.Check(keys[i], maps[i], snat) })
	}
	if got, want := strings.Count(n.Run(t, "nft", "list", "table", "inet", TableName), "jump hostports"), 4; got != want {
		t.Errorf("%d jumps to hostports, want %d: concurrent first ADDs duplicated the skeleton", got, want)
	}
	if got, want := len(elems(t, n)), pods*(2*2+2*2+1); got != want {
		t.Errorf("%d elements, want %d", got, want)
	}
}

func TestConcurrentAddsOfOneHostPort(t *testing.T) {
	const racers, rounds = 8, 5
	n := newNS(t)
	m := New()
	for round := range rounds {
		port := uint16(20000 + round)
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := firewall.Key{Network: "mynet", ContainerID: fmt.Sprintf("r%d-%d", round, i), IfName: "eth0"}
				ms := []portmap.Mapping{mapping("tcp", "", port, fmt.Sprintf("10.88.%d.%d/16", round+2, i+1), 80)}
				errs[i] = n.Do(func() error { return m.Add(k, ms, snat) })
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			var ce *portmap.ConflictError
			switch {
			case err == nil:
				won++
			case !errors.As(err, &ce):
				t.Errorf("round %d: %v, want nil or a ConflictError", round, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d of %d ADDs of tcp/%d won, want 1", round, won, racers, port)
		}
	}
	// The losers left nothing: per round, one owner and one dnat element, two masquerade elements and
	// one record.
	if got, want := len(elems(t, n)), rounds*5; got != want {
		t.Errorf("%d elements, want %d:\n%s", got, want, strings.Join(elems(t, n), "\n"))
	}
}

// handles lists the rule handles of the table, to tell whether Add rewrote anything.
var handleRE = regexp.MustCompile(`# handle \d+`)

func handles(t testing.TB, n harness.NetNS) string {
	t.Helper()
	out := n.Run(t, "nft", "-a", "list", "table", "inet", TableName)
	return strings.Join(handleRE.FindAllString(out, -1), " ")
}

func TestSkeletonIsWrittenOnceAndRepaired(t *testing.T) {
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	first := handles(t, n)
	do(t, n, func() error { return m.Add(keyB, podB, snat) })
	do(t, n, func() error { return m.Remove(keyB, nil) })
	do(t, n, func() error { return m.Add(keyB, podB, snat) })
	if got := handles(t, n); got != first {
		t.Errorf("an intact skeleton was rewritten: handles %s, then %s", first, got)
	}

	n.Run(t, "nft", "flush", "chain", "inet", TableName, chainHostports)
	n.Run(t, "nft", "add", "rule", "inet", TableName, chainPostrouting, "counter")
	if err := n.Do(func() error { return m.Check(keyA, podA, snat) }); err == nil || !strings.Contains(err.Error(), "chain hostports lacks rule") {
		t.Errorf("Check of a flushed hostports chain: %v", err)
	}
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	do(t, n, func() error { return m.Check(keyA, podA, snat) })
	if got := strings.Count(n.Run(t, "nft", "list", "chain", "inet", TableName, chainPostrouting), "@masq"); got != 2 {
		t.Errorf("postrouting has %d masquerade rules after repair, want 2", got)
	}

	n.Run(t, "nft", "delete", "table", "inet", TableName)
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	do(t, n, func() error { return m.Check(keyA, podA, snat) })
	if err := n.Do(func() error { return m.Check(keyB, podB, snat) }); err == nil {
		t.Error("B's mappings survived deleting the table")
	}
}

func TestConditionsGoThroughNFT(t *testing.T) {
	n := newNS(t)
	m := New()
	cond := portmap.Options{SNAT: true, ConditionsV4: []string{"ip daddr 192.0.2.0/24"}, ConditionsV6: []string{`iifname != "lo"`}}
	do(t, n, func() error { return m.Add(keyA, podA, cond) })
	pre := n.Run(t, "nft", "list", "chain", "inet", TableName, chainPrerouting)
	for _, want := range []string{
		"ip daddr 192.0.2.0/24 fib daddr type local jump hostports",
		`meta nfproto ipv6 iifname != "lo" fib daddr type local jump hostports`,
	} {
		if !strings.Contains(pre, want) {
			t.Errorf("prerouting lacks %q:\n%s", want, pre)
		}
	}
	first := handles(t, n)
	do(t, n, func() error { return m.Add(keyB, podB, cond) })
	if got := handles(t, n); got != first {
		t.Errorf("the same conditions rewrote the skeleton")
	}
	do(t, n, func() error { return m.Check(keyA, podA, cond) })
	// The last ADD's conditions win, node-wide.
	do(t, n, func() error { return m.Add(keyB, podB, snat) })
	if pre := n.Run(t, "nft", "list", "chain", "inet", TableName, chainPrerouting); strings.Contains(pre, "192.0.2.0") {
		t.Errorf("conditions left after an ADD without them:\n%s", pre)
	}
	do(t, n, func() error { return m.Check(keyA, podA, snat) })
	if err := n.Do(func() error {
		return m.Add(keyA, podA, portmap.Options{ConditionsV4: []string{"ip daddr 1.2.3.4 nonsense"}})
	}); err == nil || !strings.Contains(err.Error(), "nft") {
		t.Errorf("bad conditions: %v", err)
	}
}

// The rules Add writes are the ones nft compiles from the text in the package comment.
func TestSkeletonMatchesNFT(t *testing.T) {
	ours, theirs := newNS(t), newNS(t)
	do(t, ours, func() error { return New().Add(keyA, podA, snat) })
	p := mustPlan(t, keyA, snat, podA...)
	defs := setDefs()
	for _, l := range p.lens {
		defs = append(defs, l.setDef())
	}
	var text strings.Builder
	fmt.Fprintf(&text, "table inet %s {\n", TableName)
	for _, s := range defs {
		var k, d []string
		for _, x := range s.key {
			k = append(k, x.String())
		}
		for _, x := range s.data {
			d = append(d, x.String())
		}
		fmt.Fprintf(&text, "map %s { type %s : %s; }\n", s.name, strings.Join(k, " . "), strings.Join(d, " . "))
	}
	for _, l := range p.lens {
		ip := "ip"
		if l.f == ipv6 {
			ip = "ip6"
		}
		m, _ := netip.AddrFromSlice(maskBytes(int(l.f.addrLen()), l.bits))
		src := ip + " saddr"
		if l.bits < int(l.f.addrLen())*8 {
			src += " & " + m.String()
		}
		fmt.Fprintf(&text, "chain %s { type nat hook postrouting priority srcnat; policy accept;\n\tct status dnat %s . %s daddr @%s masquerade\n}\n", l.name(), src, ip, l.name())
	}
	text.WriteString(`chain hostports {
	meta nfproto ipv4 dnat ip to meta l4proto . ip daddr . th dport map @dnat4
	meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat4_any
	meta nfproto ipv6 dnat ip6 to meta l4proto . ip6 daddr . th dport map @dnat6
	meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat6_any
}
chain prerouting { type nat hook prerouting priority dstnat; policy accept;
	meta nfproto ipv4 fib daddr type local jump hostports
	meta nfproto ipv6 fib daddr type local jump hostports
}
chain output { type nat hook output priority -100; policy accept;
	meta nfproto ipv4 fib daddr type local jump hostports
	meta nfproto ipv6 fib daddr type local jump hostports
}
chain postrouting { type nat hook postrouting priority srcnat; policy accept;
	ct status dnat ip daddr @masqall4 masquerade
	ct status dnat ip6 daddr @masqall6 masquerade
}
}
`)
	if out, err := theirs.Exec("sh", "-c", "nft -f - <<'EOF'\n"+text.String()+"EOF\n"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	chains := chainDefs()
	for _, l := range p.lens {
		chains = append(chains, l.chainDef())
	}
	read := func(n harness.NetNS) map[string][]string {
		out := map[string][]string{}
		do(t, n, func() error {
			c, err := nftnl.Dial()
			if err != nil {
				return err
			}
			defer c.Close()
			rules, err := c.Rules(table(), "")
			for _, r := range rules {
				exprs, err := r.Expressions()
				if err != nil {
					return err
				}
				out[r.Chain] = append(out[r.Chain], expr.Describe(exprs))
			}
			return err
		})
		return out
	}
	got, want := read(ours), read(theirs)
	for _, ch := range chains {
		if g, w := strings.Join(got[ch.Name], "\n"), strings.Join(want[ch.Name], "\n"); g != w {
			t.Errorf("chain %s:\n%s\nnft compiles:\n%s", ch.Name, g, w)
		}
	}
	// And nft reads our maps as it would have made them: its listing loads back.
	listing := ours.Run(t, "nft", "list", "table", "inet", TableName)
	ours.Run(t, "nft", "delete", "table", "inet", TableName)
	if out, err := ours.Exec("sh", "-c", "nft -f - <<'EOF'\n"+listing+"EOF\n"); err != nil {
		t.Fatalf("nft -f of the listing: %v: %s", err, out)
	}
	do(t, ours, func() error { return New().Check(keyA, podA, snat) })
	// The maps nft made are the ones Add would make: the slow path of Add, which sends them all again,
	// works on them.
	moved := []portmap.Mapping{mapping("tcp", "", 8081, "10.88.0.5/16", 80)}
	do(t, ours, func() error { return New().Add(keyA, moved, snat) })
	do(t, ours, func() error { return New().Add(keyA, podA, snat) })
	do(t, ours, func() error { return New().Remove(keyA, hostKeys(podA)) })
	if got := ownedBy(t, ours, keyA); got != 0 {
		t.Errorf("%d elements left after Remove from the reloaded table", got)
	}
}

func TestCheckSaysWhatIsWrong(t *testing.T) {
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	n.Run(t, "nft", "delete", "element", "inet", TableName, "dnat4", "{ udp . 192.0.2.1 . 53 }")
	err := n.Do(func() error { return m.Check(keyA, podA, snat) })
	if err == nil || !strings.Contains(err.Error(), "forwarding of udp 192.0.2.1:53 to 10.88.0.5:5353 in dnat4 is missing") {
		t.Errorf("Check = %v", err)
	}
	err = n.Do(func() error { return m.Check(keyB, podA, snat) })
	if err == nil || !strings.Contains(err.Error(), "belongs to mynet/c1/eth0") {
		t.Errorf("Check of another attachment = %v", err)
	}
	// Add restores what went missing.
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	do(t, n, func() error { return m.Check(keyA, podA, snat) })
	// A rule with the right comment that does something else.
	n.Run(t, "nft", "flush", "chain", "inet", TableName, "masq4_16")
	n.Run(t, "nft", "add", "rule", "inet", TableName, "masq4_16", "ct", "status", "dnat", "ip", "saddr", "&", "255.255.0.0", ".", "ip", "daddr", "@masq4_16",
		"accept", "comment", `"masquerade ipv4 sources in the pod's /16"`)
	if err := n.Do(func() error { return m.Check(keyA, podA, snat) }); err == nil || !strings.Contains(err.Error(), "chain masq4_16 lacks rule") {
		t.Errorf("Check of a changed masquerade rule: %v", err)
	}
}

func TestAvailable(t *testing.T) {
	n := newNS(t)
	do(t, n, func() error {
		if !Available() {
			return errors.New("nftables not available in a fresh namespace")
		}
		return nil
	})
}

func TestRefusals(t *testing.T) {
	n := newNS(t)
	m := New()
	for _, tc := range []struct {
		name string
		k    firewall.Key
		ms   []portmap.Mapping
		o    portmap.Options
	}{
		{"empty key", firewall.Key{Network: "mynet"}, podA, snat},
		{"bad mapping", keyA, []portmap.Mapping{{Protocol: "tcp", HostPort: 1, PodPort: 1}}, snat},
		{"condition with a command", keyA, podA, portmap.Options{ConditionsV4: []string{"ip daddr 1.2.3.4; flush ruleset"}}},
	} {
		if err := n.Do(func() error { return m.Add(tc.k, tc.ms, tc.o) }); err == nil {
			t.Errorf("%s: Add accepted", tc.name)
		}
	}
	if got := n.Run(t, "nft", "list", "ruleset"); strings.TrimSpace(got) != "" {
		t.Errorf("refused Adds left a ruleset:\n%s", got)
	}
	// Add with no mappings removes the attachment's.
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	do(t, n, func() error { return m.Add(keyA, nil, snat) })
	if got := ownedBy(t, n, keyA); got != 0 {
		t.Errorf("%d elements left after Add of no mappings", got)
	}
}
