package nftables

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/internal/fwtest"
)

var (
	keyB   = firewall.Key{Network: "mynet", ContainerID: "c2", IfName: "eth0"}
	addrsA = []netip.Prefix{netip.MustParsePrefix("10.88.0.5/16"), netip.MustParsePrefix("fd88::5/64")}
	addrsB = []netip.Prefix{netip.MustParsePrefix("10.88.0.6/16"), netip.MustParsePrefix("fd88::6/64")}
)

// rootNS is a fresh namespace and a Masq whose records live in a directory of the test's.
func rootNS(t *testing.T) (fwtest.NetNS, *Masq) {
	t.Helper()
	fwtest.RequireRoot(t)
	return fwtest.NewNetNS(t, "nmasq"), NewWithRecords(t.TempDir())
}

func do(t *testing.T, n fwtest.NetNS, f func() error) {
	t.Helper()
	if err := n.Do(f); err != nil {
		t.Fatal(err)
	}
}

// count is how many rules of masq_checks carry k's comment.
func count(t *testing.T, n fwtest.NetNS, k firewall.Key) int {
	t.Helper()
	out, err := n.Try("nft", "list", "chain", "inet", TableName, MasqChain)
	if err != nil {
		return 0 // no table
	}
	return strings.Count(out, `comment "`+Comment(k)+`"`)
}

func handlesOf(t *testing.T, m *Masq, k firewall.Key) ([]uint64, recordState) {
	t.Helper()
	r, st, err := m.records.load(k)
	if err != nil {
		t.Fatal(err)
	}
	return r.Handles, st
}

func TestRecordedLifecycle(t *testing.T) {
	n, m := rootNS(t)
	do(t, n, func() error { return m.Ensure(keyA, addrsA) })
	do(t, n, func() error { return m.Ensure(keyB, addrsB) })
	if h, st := handlesOf(t, m, keyA); st != usable || len(h) != 2 {
		t.Fatalf("record after Ensure: %v, state %d", h, st)
	}
	do(t, n, func() error { return m.Check(keyA, addrsA) })
	// Ensure again finds its rules by the record and changes nothing.
	before, _ := handlesOf(t, m, keyA)
	do(t, n, func() error { return m.Ensure(keyA, addrsA) })
	if after, _ := handlesOf(t, m, keyA); !slices.Equal(before, after) || count(t, n, keyA) != 2 {
		t.Errorf("Ensure again: handles %v -> %v, %d rules", before, after, count(t, n, keyA))
	}
	// A changed address: the old rule goes, the record follows.
	moved := []netip.Prefix{addrsA[0], netip.MustParsePrefix("fd88::50/64")}
	do(t, n, func() error { return m.Ensure(keyA, moved) })
	if h, st := handlesOf(t, m, keyA); st != usable || len(h) != 2 || count(t, n, keyA) != 2 || h[0] != before[0] {
		t.Errorf("after an address change: record %v (state %d), %d rules", h, st, count(t, n, keyA))
	}
	do(t, n, func() error { return m.Check(keyA, moved) })
	if err := n.Do(func() error { return m.Check(keyA, addrsA) }); err == nil {
		t.Error("Check passed for an address that has no rule")
	}
	do(t, n, func() error { return m.Remove(keyA) })
	if count(t, n, keyA) != 0 || count(t, n, keyB) != 2 {
		t.Errorf("after Remove: %d rules of A, %d of B", count(t, n, keyA), count(t, n, keyB))
	}
	if _, st := handlesOf(t, m, keyA); st != noRecord {
		t.Errorf("record left after Remove: state %d", st)
	}
	do(t, n, func() error { return m.Remove(keyA) })
}

// Without a usable record (none, pending after a crash, garbled) Check, Ensure and Remove go by the
// comments, as before records.
func TestWithoutRecord(t *testing.T) {
	for _, spoil := range []struct {
		name string
		f    func(path string) error
	}{
		{"removed", os.Remove},
		{"pending", func(p string) error { return os.WriteFile(p, []byte(`{"pending":true}`), 0o600) }},
		{"garbled", func(p string) error { return os.WriteFile(p, []byte(`{"handles":[1`), 0o600) }},
	} {
		t.Run(spoil.name, func(t *testing.T) {
			n, m := rootNS(t)
			do(t, n, func() error { return m.Ensure(keyA, addrsA) })
			do(t, n, func() error { return m.Ensure(keyB, addrsB) })
			if err := spoil.f(m.records.path(keyA)); err != nil {
				t.Fatal(err)
			}
			do(t, n, func() error { return m.Check(keyA, addrsA) })
			if spoil.name != "removed" {
				// Ensure lists the chain and adopts the rules it finds, and records them.
				do(t, n, func() error { return m.Ensure(keyA, addrsA) })
				if h, st := handlesOf(t, m, keyA); count(t, n, keyA) != 2 || st != usable || len(h) != 2 {
					t.Errorf("Ensure: %d rules, record %v state %d", count(t, n, keyA), h, st)
				}
				if err := spoil.f(m.records.path(keyA)); err != nil {
					t.Fatal(err)
				}
			}
			do(t, n, func() error { return m.Remove(keyA) })
			if count(t, n, keyA) != 0 || count(t, n, keyB) != 2 {
				t.Errorf("after Remove: %d rules of A, %d of B", count(t, n, keyA), count(t, n, keyB))
			}
		})
	}
}

// The table was flushed and made anew by someone else: the recorded handles now name other
// attachments' rules, which Check, Remove and Ensure must not take for A's.
func TestStaleHandles(t *testing.T) {
	n, m := rootNS(t)
	do(t, n, func() error { return m.Ensure(keyA, addrsA) })
	stale, _ := handlesOf(t, m, keyA)
	n.Run(t, "nft", "delete", "table", "inet", TableName)
	other := NewWithRecords(t.TempDir())
	do(t, n, func() error { return other.Ensure(keyB, addrsB) })
	if h, _ := handlesOf(t, other, keyB); !slices.Equal(h, stale) {
		t.Fatalf("the new table's handles %v are not the stale ones %v: the test does not test", h, stale)
	}
	if err := n.Do(func() error { return m.Check(keyA, addrsA) }); err == nil {
		t.Error("Check passed on B's rules")
	}
	do(t, n, func() error { return m.Remove(keyA) })
	if count(t, n, keyB) != 2 {
		t.Fatalf("A's Remove deleted B's rules: %d left", count(t, n, keyB))
	}
	do(t, n, func() error { return m.Ensure(keyA, addrsA) })
	do(t, n, func() error { return m.Check(keyA, addrsA) })
	if count(t, n, keyA) != 2 || count(t, n, keyB) != 2 {
		t.Errorf("after A's Ensure: %d rules of A, %d of B", count(t, n, keyA), count(t, n, keyB))
	}
	// And a record naming handles that no longer exist at all.
	if err := m.records.store(keyA, record{Handles: []uint64{9000, 9001}}); err != nil {
		t.Fatal(err)
	}
	do(t, n, func() error { return m.Check(keyA, addrsA) })
	do(t, n, func() error { return m.Remove(keyA) })
	if count(t, n, keyA) != 0 || count(t, n, keyB) != 2 {
		t.Errorf("after Remove: %d rules of A, %d of B", count(t, n, keyA), count(t, n, keyB))
	}
}

// Rules in the reference's layout, written by nft with nothing but their comment to go by: Check
// finds them, Remove deletes them, and GC deletes those of attachments gone.
func TestReferenceRulesByComment(t *testing.T) {
	n, m := rootNS(t)
	ruleset := fmt.Sprintf(`table inet %[1]s {
	chain %[2]s {
		ip saddr 10.88.0.5 ip daddr != 10.88.0.0/16 masquerade comment "%[4]s"
		ip6 saddr fd88::5 ip6 daddr != fd88::/64 masquerade comment "%[4]s"
		ip saddr 10.88.0.6 ip daddr != 10.88.0.0/16 masquerade comment "%[5]s"
		ip6 saddr fd88::6 ip6 daddr != fd88::/64 masquerade comment "%[5]s"
	}
	chain %[3]s {
		type nat hook postrouting priority srcnat; policy accept;
		ip daddr 224.0.0.0/4 return
		ip6 daddr ff00::/8 return
		goto %[2]s
	}
}
`, TableName, MasqChain, PostroutingName, Comment(keyA), Comment(keyB))
	f := t.TempDir() + "/ruleset.nft"
	if err := os.WriteFile(f, []byte(ruleset), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Run(t, "nft", "-f", f)
	do(t, n, func() error { return m.Check(keyA, addrsA) })
	do(t, n, func() error { return m.Remove(keyA) })
	if count(t, n, keyA) != 0 || count(t, n, keyB) != 2 {
		t.Errorf("after Remove: %d rules of A, %d of B", count(t, n, keyA), count(t, n, keyB))
	}
	// B's record, of an earlier pod of that name, goes with B's rules.
	if err := m.records.store(keyB, record{Handles: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	do(t, n, func() error { return m.GC("mynet", nil) })
	if _, st := handlesOf(t, m, keyB); count(t, n, keyB) != 0 || st != noRecord {
		t.Errorf("after GC: %d rules of B, record state %d", count(t, n, keyB), st)
	}
}
