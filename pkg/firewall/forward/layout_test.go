package forward

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/filelock"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/xtables"
)

// emptyFilter is a fresh filter table as `iptables -S` prints it.
const emptyFilter = "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n"

func newFake(t *testing.T, rules string) *xtables.Fake {
	t.Helper()
	f := xtables.NewFake()
	for _, fam := range xtables.Families() {
		if err := f.Load(fam, emptyFilter+rules); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// rulesOf returns the "-A" lines of fam's table, as iptables-save prints them.
func rulesOf(f *xtables.Fake, fam xtables.Family) string {
	var out []string
	for _, l := range strings.Split(f.Dump(fam), "\n") {
		if strings.HasPrefix(l, "-A ") {
			out = append(out, l)
		}
	}
	return sorted(strings.Join(out, "\n"))
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// The rules exactly as the reference v1.9.1 leaves them (iptables-save of a node after its ADDs).
const (
	refOpen = `-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT`
	refSameBridge = `-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT
-A CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
-A CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN`
	refIsolated = `-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT
-A CNI-ISOLATION-STAGE-1 -i cni0 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
-A CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
-A CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN`
)

// sorted compares iptables-save output chain by chain: Save prints chains sorted, not in creation order.
func sorted(s string) string {
	lines := strings.Split(s, "\n")
	byChain := map[string][]string{}
	for _, l := range lines {
		if l == "" {
			continue
		}
		c := strings.Fields(l)[1]
		byChain[c] = append(byChain[c], l)
	}
	var out []string
	for _, c := range []string{"FORWARD", "MY-ADMIN", "CNI-ADMIN", "CNI-FORWARD", "CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"} {
		out = append(out, byChain[c]...)
	}
	return strings.Join(out, "\n")
}

func TestOpenLayout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
		want   string
	}{
		{"open", PolicyOpen, refOpen},
		{"default policy", "", refOpen},
		{"same-bridge", PolicySameBridge, refSameBridge},
		{"isolated", PolicyIsolated, refIsolated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, "")
			x := NewIPTablesWithTools(f, DefaultAdminChain)
			a := addrs("10.88.0.5")
			open := func() error {
				if err := x.Open(a); err != nil {
					return err
				}
				return x.Isolate(a, "cni0", tc.policy)
			}
			if err := open(); err != nil {
				t.Fatal(err)
			}
			if got := rulesOf(f, xtables.IPv4); got != sorted(tc.want) {
				t.Errorf("IPv4 rules:\n%s\nwant:\n%s", got, sorted(tc.want))
			}
			if got := rulesOf(f, xtables.IPv6); got != "" {
				t.Errorf("IPv6 rules for an IPv4-only pod:\n%s", got)
			}
			restores := len(f.Restores[xtables.IPv4])
			if err := open(); err != nil {
				t.Fatal(err)
			}
			if len(f.Restores[xtables.IPv4]) != restores {
				t.Errorf("a second Open changed the table: %q", f.Restores[xtables.IPv4][restores:])
			}
			if err := x.Check(a); err != nil {
				t.Errorf("Check after Open: %v", err)
			}
			if err := x.CheckIsolation(a, "cni0", tc.policy); err != nil {
				t.Errorf("CheckIsolation after Isolate: %v", err)
			}
			if err := x.Close(a); err != nil {
				t.Fatal(err)
			}
			if got := rulesOf(f, xtables.IPv4); strings.Contains(got, "10.88.0.5") {
				t.Errorf("after Close:\n%s", got)
			}
			if err := x.Check(a); err == nil || !strings.Contains(err.Error(), "10.88.0.5") {
				t.Errorf("Check after Close: %v, want the missing pod rule", err)
			}
			if err := x.Close(a); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

// What the reference plugin installed is checked and removed as netloom's own; the admin chain and
// its rules stay.
func TestReferenceStateAndAdminChain(t *testing.T) {
	f := newFake(t, "-N CNI-FORWARD\n-N CNI-ADMIN\n-N CNI-ISOLATION-STAGE-1\n-N CNI-ISOLATION-STAGE-2\n"+
		refIsolated+"\n-A CNI-ADMIN -s 192.0.2.0/24 -j DROP\n")
	x := NewIPTablesWithTools(f, DefaultAdminChain)
	a := addrs("10.88.0.5")
	if err := x.Check(a); err != nil {
		t.Fatalf("Check of the reference's rules: %v", err)
	}
	if err := x.CheckIsolation(a, "cni0", PolicyIsolated); err != nil {
		t.Fatalf("CheckIsolation of the reference's rules: %v", err)
	}
	if err := x.CheckIsolation(a, "cni1", PolicyIsolated); err == nil {
		t.Error("Check found isolation rules for a bridge that has none")
	}
	if err := x.Close(a); err != nil {
		t.Fatal(err)
	}
	got := rulesOf(f, xtables.IPv4)
	if strings.Contains(got, "10.88.0.5") || !strings.Contains(got, "-A CNI-ADMIN -s 192.0.2.0/24 -j DROP") ||
		!strings.Contains(got, "-j CNI-ADMIN") {
		t.Errorf("after Close:\n%s", got)
	}
}

func TestDualStackAndSecondPod(t *testing.T) {
	f := newFake(t, "")
	x := NewIPTablesWithTools(f, "MY-ADMIN")
	if err := x.Open(addrs("10.88.0.5", "fd00::5", "10.88.0.5")); err != nil {
		t.Fatal(err)
	}
	if err := x.Open(addrs("10.88.0.6")); err != nil {
		t.Fatal(err)
	}
	v4, v6 := rulesOf(f, xtables.IPv4), rulesOf(f, xtables.IPv6)
	if strings.Count(v4, "-j CNI-FORWARD") != 1 || strings.Count(v4, "-j MY-ADMIN") != 1 ||
		strings.Count(v4, "10.88.0.5/32") != 2 || strings.Count(v4, "10.88.0.6/32") != 2 {
		t.Errorf("IPv4:\n%s", v4)
	}
	if !strings.Contains(v6, "-A CNI-FORWARD -s fd00::5/128 -j ACCEPT") || strings.Contains(v6, "10.88") {
		t.Errorf("IPv6:\n%s", v6)
	}
	if err := x.Close(addrs("10.88.0.5", "fd00::5")); err != nil {
		t.Fatal(err)
	}
	if v4 := rulesOf(f, xtables.IPv4); strings.Contains(v4, "10.88.0.5") || !strings.Contains(v4, "10.88.0.6") {
		t.Errorf("after closing the first pod:\n%s", v4)
	}
}

func TestLockTimeoutKeepsCode(t *testing.T) {
	f := newFake(t, "")
	f.Locked[xtables.IPv4] = true
	err := NewIPTablesWithTools(f, DefaultAdminChain).Open(addrs("10.88.0.5"))
	if conf.Code(err) != conf.CodeTryAgainLater {
		t.Errorf("Open under a held lock: %v, want code 11", err)
	}
}

// A restore that fails because someone changed the table meanwhile is planned again from a fresh read.
func TestRetryOnConcurrentChange(t *testing.T) {
	f := newFake(t, "")
	f.Fail[xtables.IPv4], f.FailN[xtables.IPv4] = errors.New("iptables-restore: line 2 failed"), 1
	if err := NewIPTablesWithTools(f, DefaultAdminChain).Open(addrs("10.88.0.5")); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(f, xtables.IPv4); got != sorted(refOpen) {
		t.Errorf("after the retry:\n%s", got)
	}
}

func TestCheckChainName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"CNI-ADMIN", true}, {"my_admin.1", true}, {"", false}, {"FORWARD", false}, {"CNI-FORWARD", false},
		{"ACCEPT", false}, {"a b", false}, {"-x", false}, {"!x", false}, {strings.Repeat("A", 29), false},
		{strings.Repeat("A", 28), true}, {`a"b`, false}, {"é", false},
	} {
		if err := CheckChainName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckChainName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestStale(t *testing.T) {
	a1 := conf.Attachment{ContainerID: "c1", IfName: "eth0"}
	a2 := conf.Attachment{ContainerID: "c2", IfName: "eth0"}
	a3 := conf.Attachment{ContainerID: "c3", IfName: "eth0"}
	records := map[conf.Attachment][]netip.Addr{
		a1: addrs("10.0.0.1"),
		a2: addrs("10.0.0.2", "fd00::2"),
		a3: addrs("10.0.0.1"), // c1's address, reused by a live pod
	}
	gone, stale := Stale(records, map[conf.Attachment]bool{a3: true})
	if len(gone) != 2 || gone[0] != a1 || gone[1] != a2 {
		t.Errorf("gone = %v", gone)
	}
	if want := addrs("10.0.0.2", "fd00::2"); len(stale) != 2 || stale[0] != want[0] || stale[1] != want[1] {
		t.Errorf("stale addresses = %v, want %v", stale, want)
	}
}

func TestStore(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	k1 := firewall.Key{Network: "net", ContainerID: "c1", IfName: "eth0"}
	k2 := firewall.Key{Network: "net", ContainerID: "c2", IfName: "net1"}
	if got, err := s.Load(k1); err != nil || got != nil {
		t.Fatalf("Load of nothing: %v, %v", got, err)
	}
	if err := s.Save(k1, addrs("10.0.0.1", "fd00::1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(k2, addrs("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(k1); err != nil || len(got) != 2 || got[1] != netip.MustParseAddr("fd00::1") {
		t.Errorf("Load = %v, %v", got, err)
	}
	all, err := s.List("net")
	if err != nil || len(all) != 2 || len(all[k2.Attachment()]) != 1 {
		t.Errorf("List = %v, %v", all, err)
	}
	for _, k := range []firewall.Key{k1, k2, k2} {
		if err := s.Remove(k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "net")); !os.IsNotExist(err) {
		t.Errorf("the network's directory stays after its last attachment: %v", err)
	}
	if err := s.Save(firewall.Key{Network: "net", ContainerID: "c1"}, nil); err == nil {
		t.Error("Save took a key without an interface name")
	}
}

// TestChangeShared: a change says it adds what pods share exactly when it adds a chain, a jump or an
// isolation rule; once those exist, a pod's ADD adds only its own rules and takes no lock.
func TestChangeShared(t *testing.T) {
	pod := addrs("10.88.0.5")
	opened, _ := Plan{Admin: DefaultAdminChain, Addrs: addrs("10.88.0.9")}.Change(xtables.NewTable())
	isolated, _ := Plan{Bridge: "cni0", Policy: PolicySameBridge}.Change(xtables.NewTable())
	for _, c := range []struct {
		name       string
		table      string // restore lines applied to an empty table first
		plan       Plan
		wantShared bool
		wantEmpty  bool
	}{
		{"first pod", "", Plan{Admin: DefaultAdminChain, Addrs: pod}, true, false},
		{"second pod", opened.Script(FilterTable), Plan{Admin: DefaultAdminChain, Addrs: pod}, false, false},
		{"first pod of another admin chain", opened.Script(FilterTable), Plan{Admin: "MY-ADMIN", Addrs: pod}, true, false},
		{"first isolation of a bridge", opened.Script(FilterTable), Plan{Bridge: "cni0", Policy: PolicySameBridge}, true, false},
		{"isolation again", isolated.Script(FilterTable), Plan{Bridge: "cni0", Policy: PolicySameBridge}, false, true},
		{"isolated policy on a same-bridge bridge", isolated.Script(FilterTable), Plan{Bridge: "cni0", Policy: PolicyIsolated}, true, false},
		{"no addresses, open policy", "", Plan{Admin: DefaultAdminChain}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, "")
			if c.table != "" {
				if err := f.Restore(xtables.IPv4, c.table); err != nil {
					t.Fatal(err)
				}
			}
			text, err := f.Save(xtables.IPv4, FilterTable)
			if err != nil {
				t.Fatal(err)
			}
			tb, err := xtables.Parse(text, FilterTable, keep)
			if err != nil {
				t.Fatal(err)
			}
			b, shared := c.plan.Change(tb)
			if shared != c.wantShared || b.Empty() != c.wantEmpty {
				t.Errorf("shared %v, empty %v; want %v, %v; batch:\n%s", shared, b.Empty(), c.wantShared, c.wantEmpty, strings.Join(b.Lines(), "\n"))
			}
		})
	}
}

// TestLockOnlyForShared: with another process holding the lock, a pod's ADD on a node whose chains
// exist goes through, and a first ADD waits and then fails with code 11.
func TestLockOnlyForShared(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "firewall.lock")
	unlock, err := filelock.Create(lock, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	backend := func(f *xtables.Fake) *IPTables {
		x := NewIPTablesWithTools(f, DefaultAdminChain)
		x.lockFile, x.wait = lock, 50*time.Millisecond
		return x
	}
	first := newFake(t, "")
	if err := backend(first).Open(addrs("10.88.0.5")); conf.Code(err) != conf.CodeTryAgainLater {
		t.Fatalf("first ADD with the lock held elsewhere: %v, want code %d", err, conf.CodeTryAgainLater)
	}
	if d := rulesOf(first, xtables.IPv4); d != "" {
		t.Fatalf("the first ADD wrote without the lock:\n%s", d)
	}
	ready := newFake(t, "")
	if err := NewIPTablesWithTools(ready, DefaultAdminChain).Open(addrs("10.88.0.5")); err != nil {
		t.Fatal(err)
	}
	if err := backend(ready).Open(addrs("10.88.0.6")); err != nil {
		t.Fatalf("a second pod's ADD waited for the lock: %v", err)
	}
	if err := backend(ready).Close(addrs("10.88.0.5")); err != nil {
		t.Fatalf("a DEL waited for the lock: %v", err)
	}
}
