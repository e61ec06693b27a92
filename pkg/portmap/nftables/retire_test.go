package nftables

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/test/harness"
)

// expired waits until whatever was retired has expired in the kernel: 1 ms, counted in jiffies.
func expired() { time.Sleep(50 * time.Millisecond) }

// listed is what `nft list table` shows of the table's elements, with their comments.
func listed(t *testing.T, n harness.NetNS) string {
	t.Helper()
	return n.Run(t, "nft", "list", "table", "inet", TableName)
}

func requireExpiryUpdates(t *testing.T) {
	t.Helper()
	if !nftnl.ExpiryUpdates() {
		t.Skip("this kernel does not update the expiration of an element (Linux 6.10 and later do): its tables are untimed and DEL deletes, which TestUntimedTable and the other root tests cover")
	}
}

// On a kernel that updates expirations, the table is timed and a DEL or GC retires elements: they stop
// matching at once and leave the listing, with nothing deleted.
func TestRetirement(t *testing.T) {
	requireExpiryUpdates(t)
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	do(t, n, func() error { return m.Add(keyB, podB, snat) })
	if got := regexp.MustCompile(`timeout 36500d`).FindAllString(listed(t, n), -1); len(got) < len(setDefs()) {
		t.Errorf("%d maps with a timeout, want every one of %d:\n%s", len(got), len(setDefs()), listed(t, n))
	}
	do(t, n, func() error { return m.Remove(keyA, hostKeys(podA)) })
	if got := ownedBy(t, n, keyA); got != 0 {
		t.Errorf("%d elements of A after its DEL", got)
	}
	do(t, n, func() error {
		if err := m.Check(keyA, podA, snat); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Errorf("CHECK of A after its DEL: %v, want its elements missing", err)
		}
		return nil
	})
	do(t, n, func() error { return m.GC("mynet", map[conf.Attachment]bool{}) })
	expired()
	if l := listed(t, n); strings.Contains(l, comment(keyA)) || strings.Contains(l, comment(keyB)) {
		t.Errorf("the kernel still lists retired elements:\n%s", l)
	}
}

// An attachment added again right after its DEL, with the same mappings (the same elements), keeps
// them: the ADD gives every element its full lifetime, so a retiring one is revived, not left to
// expire. Another attachment that takes a retired host port at once gets it too.
func TestAddRightAfterRetirement(t *testing.T) {
	requireExpiryUpdates(t)
	n := newNS(t)
	m := New()
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	want := ownedBy(t, n, keyA)
	do(t, n, func() error {
		if err := m.Remove(keyA, hostKeys(podA)); err != nil {
			return err
		}
		return m.Add(keyA, podA, snat)
	})
	expired()
	if got := ownedBy(t, n, keyA); got != want {
		t.Errorf("A has %d elements after DEL and ADD, want %d", got, want)
	}
	do(t, n, func() error { return m.Check(keyA, podA, snat) })

	// B takes A's host ports for its own pod the moment A is gone; then C takes B's pod address (its
	// masquerade elements are in the same slots, with another owner) on other ports: each Add waits for
	// the retiring elements in its way to expire.
	podB2 := []portmap.Mapping{mapping("tcp", "", 8080, "10.88.0.9/16", 80), mapping("udp", "192.0.2.1", 53, "10.88.0.9/16", 5353)}
	podC := []portmap.Mapping{mapping("tcp", "", 7070, "10.88.0.9/16", 80)}
	for _, step := range []struct {
		gone, next     firewall.Key
		goneMs, nextMs []portmap.Mapping
	}{{keyA, keyB, podA, podB2}, {keyB, keyC, podB2, podC}} {
		do(t, n, func() error {
			if err := m.Remove(step.gone, hostKeys(step.goneMs)); err != nil {
				return err
			}
			return m.Add(step.next, step.nextMs, snat)
		})
		expired()
		do(t, n, func() error { return m.Check(step.next, step.nextMs, snat) })
		if got := ownedBy(t, n, step.gone); got != 0 {
			t.Errorf("%v has %d elements after %v took its place", step.gone, got, step.next)
		}
	}
}

// A table made before tables were timed (a node upgraded in place) stays untimed: its maps are not
// sent again with a timeout (the kernel would refuse them), maps added to it later are untimed too, and
// DEL and GC delete.
func TestUntimedTable(t *testing.T) {
	n := newNS(t)
	old, m := &Mapper{untimed: true}, New()
	do(t, n, func() error { return old.Add(keyA, podA, snat) })
	// keyC's /24 brings a map and chain of a new prefix length; conditions rewrite the hook chains.
	do(t, n, func() error { return m.Add(keyC, []portmap.Mapping{mapping("tcp", "", 1, "10.99.0.5/24", 1)}, snat) })
	do(t, n, func() error {
		return m.Add(keyB, podB, portmap.Options{SNAT: true, ConditionsV4: []string{"ip saddr != 10.0.0.0/8"}})
	})
	if l := listed(t, n); strings.Contains(l, "timeout") || strings.Contains(l, "expires") {
		t.Errorf("an untimed table gained timeouts:\n%s", l)
	}
	do(t, n, func() error { return m.Remove(keyA, hostKeys(podA)) })
	do(t, n, func() error { return m.GC("other", map[conf.Attachment]bool{}) })
	if l := listed(t, n); strings.Contains(l, comment(keyA)) || strings.Contains(l, comment(keyC)) {
		t.Errorf("DEL or GC left elements in an untimed table:\n%s", l)
	}
	do(t, n, func() error { return m.Check(keyB, podB, snat) })

	// The attachments map deleted by hand (no rule refers to it): a new one comes back untimed, like
	// the rest, rather than a timed one next to untimed maps.
	n.Run(t, "nft", "delete", "map", "inet", TableName, setAttachments)
	do(t, n, func() error { return m.Add(keyA, podA, snat) })
	if l := listed(t, n); strings.Contains(l, "timeout") || strings.Contains(l, "expires") {
		t.Errorf("a map added to an untimed table has a timeout:\n%s", l)
	}
	do(t, n, func() error { return m.Remove(keyA, hostKeys(podA)) })
	if got := ownedBy(t, n, keyA); got != 0 {
		t.Errorf("%d elements of A after its DEL", got)
	}
}
