package iptables

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/utils"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/xtables"
)

var (
	keyA = firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "eth0"}
	keyB = firewall.Key{Network: "mynet", ContainerID: "c2", IfName: "eth0"}
	keyC = firewall.Key{Network: "other", ContainerID: "c1", IfName: "eth0"}
	v4A  = netip.MustParsePrefix("10.1.2.5/24")
	v4B  = netip.MustParsePrefix("10.1.2.6/24")
	v6A  = netip.MustParsePrefix("fd00:1::5/64")
	chA  = "CNI-f0bca4ac77cde1bf2f3da5df" // the reference's utils.FormatChainName("mynet", "c1")
	cmtA = `"name: \"mynet\" id: \"c1\""` // as iptables prints it
	// dumpA is the nat table after keyA's Ensure for v4A, as iptables-save prints it.
	dumpA = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-f0bca4ac77cde1bf2f3da5df - [0:0]
-A POSTROUTING -s 10.1.2.5/32 -m comment --comment "name: \"mynet\" id: \"c1\"" -j CNI-f0bca4ac77cde1bf2f3da5df
-A CNI-f0bca4ac77cde1bf2f3da5df -d 10.1.2.0/24 -m comment --comment "name: \"mynet\" id: \"c1\"" -j ACCEPT
-A CNI-f0bca4ac77cde1bf2f3da5df ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"c1\"" -j MASQUERADE
COMMIT
`
)

const (
	ipv4 = xtables.IPv4
	ipv6 = xtables.IPv6
)

// newFakeMasq returns a Masq over an in-memory namespace.
func newFakeMasq() (*Masq, *xtables.Fake) {
	f := xtables.NewFake()
	return newWithTools(f), f
}

// runs counts the iptables processes f stood in for.
func runs(f *xtables.Fake) int {
	return f.Saves[ipv4] + f.Saves[ipv6] + f.Lists[ipv4] + f.Lists[ipv6] + len(f.Restores[ipv4]) + len(f.Restores[ipv6])
}

func TestNamesMatchReference(t *testing.T) {
	for _, k := range []firewall.Key{keyA, keyB, keyC, {Network: `we"ird\net`, ContainerID: "x.y-z_0", IfName: "e"}} {
		if got, want := ChainName(k.Network, k.ContainerID), utils.FormatChainName(k.Network, k.ContainerID); got != want {
			t.Errorf("ChainName(%q, %q) = %q, reference %q", k.Network, k.ContainerID, got, want)
		}
		c := Comment(k.Network, k.ContainerID)
		if want := utils.FormatComment(k.Network, k.ContainerID); c != want {
			t.Errorf("Comment = %q, reference %q", c, want)
		}
		if net, id, ok := parseComment(c); !ok || net != k.Network || id != k.ContainerID {
			t.Errorf("parseComment(%q) = %q, %q, %v", c, net, id, ok)
		}
	}
	if ChainName("mynet", "c1") != chA {
		t.Errorf("ChainName changed: %s", ChainName("mynet", "c1"))
	}
	for _, c := range []string{"", "name: mynet id: c1", `name: "a" id: "b" extra`} {
		if _, _, ok := parseComment(c); ok {
			t.Errorf("parseComment(%q) accepted", c)
		}
	}
}

func TestDesired(t *testing.T) {
	l := desired("mynet", "c1", []netip.Prefix{v4A, netip.MustParsePrefix("10.9.0.7/16"), v4B})
	var got []string
	for _, r := range l.rules {
		got = append(got, r.String())
	}
	for _, j := range l.jumps {
		got = append(got, j.String())
	}
	want := []string{
		`-d 10.1.2.0/24 -m comment --comment ` + cmtA + ` -j ACCEPT`,
		`-d 10.9.0.0/16 -m comment --comment ` + cmtA + ` -j ACCEPT`,
		`! -d 224.0.0.0/4 -m comment --comment ` + cmtA + ` -j MASQUERADE`,
		`-s 10.1.2.5/32 -m comment --comment ` + cmtA + ` -j ` + chA,
		`-s 10.9.0.7/32 -m comment --comment ` + cmtA + ` -j ` + chA,
		`-s 10.1.2.6/32 -m comment --comment ` + cmtA + ` -j ` + chA,
	}
	if !slices.Equal(got, want) {
		t.Errorf("desired:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	l6 := desired("mynet", "c1", []netip.Prefix{v6A})
	if got := l6.rules[1].String(); got != `! -d ff00::/8 -m comment --comment `+cmtA+` -j MASQUERADE` {
		t.Errorf("v6 masquerade rule: %s", got)
	}
	if got := l6.jumps[0].String(); got != `-s fd00:1::5/128 -m comment --comment `+cmtA+` -j `+chA {
		t.Errorf("v6 jump: %s", got)
	}
}

func TestEnsureFresh(t *testing.T) {
	m, f := newFakeMasq()
	if err := m.Ensure(keyA, []netip.Prefix{v4A}); err != nil {
		t.Fatal(err)
	}
	if got := f.Dump(ipv4); got != dumpA {
		t.Errorf("table:\n%s\nwant:\n%s", got, dumpA)
	}
	// No read, one restore: the chain first, then the jump into it.
	want := `*nat
-N ` + chA + `
-A ` + chA + ` -d 10.1.2.0/24 -m comment --comment ` + cmtA + ` -j ACCEPT
-A ` + chA + ` ! -d 224.0.0.0/4 -m comment --comment ` + cmtA + ` -j MASQUERADE
-A POSTROUTING -s 10.1.2.5/32 -m comment --comment ` + cmtA + ` -j ` + chA + `
COMMIT
`
	if n := runs(f); n != 1 || len(f.Restores[ipv4]) != 1 || f.Restores[ipv4][0] != want {
		t.Errorf("%d runs, restores:\n%s\nwant no read and:\n%s", n, strings.Join(f.Restores[ipv4], "\n"), want)
	}

	// Again: the restore that assumes a fresh attachment fails (the chain exists), the table is read and
	// there is nothing to change.
	before := runs(f)
	if err := m.Ensure(keyA, []netip.Prefix{v4A}); err != nil {
		t.Fatal(err)
	}
	if n := runs(f) - before; n != 2 || f.Saves[ipv4] != 1 {
		t.Errorf("idempotent Ensure ran iptables %d times (%d reads), want a refused restore and a read", n, f.Saves[ipv4])
	}
	if got := f.Dump(ipv4); got != dumpA {
		t.Errorf("table after second Ensure:\n%s", got)
	}
	if err := m.Check(keyA, []netip.Prefix{v4A}); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestEnsureRepairs(t *testing.T) {
	comment := Comment("mynet", "c1")
	cm := func(s ...string) xtables.Rule {
		return append(xtables.Rule(s), "-m", "comment", "--comment", comment)
	}
	for _, tc := range []struct {
		name  string
		chain []xtables.Rule // preset content of chA, nil: no chain
		jumps []xtables.Rule // preset POSTROUTING rules
		addrs []netip.Prefix
		want  string
	}{{
		name: "reference layout is adopted as is",
		chain: []xtables.Rule{
			append(cm("-d", "10.1.2.0/24"), "-j", "ACCEPT"),
			append(cm("!", "-d", "224.0.0.0/4"), "-j", "MASQUERADE"),
		},
		jumps: []xtables.Rule{append(cm("-s", "10.1.2.5/32"), "-j", chA)},
		addrs: []netip.Prefix{v4A},
		want:  dumpA,
	}, {
		name:  "half-made chain is completed",
		chain: []xtables.Rule{append(cm("-d", "10.1.2.0/24"), "-j", "ACCEPT")},
		addrs: []netip.Prefix{v4A},
		want:  dumpA,
	}, {
		name:  "old subnet jump and changed address are replaced",
		chain: []xtables.Rule{append(cm("-d", "10.7.0.0/16"), "-j", "ACCEPT"), append(cm("!", "-d", "224.0.0.0/4"), "-j", "MASQUERADE")},
		jumps: []xtables.Rule{append(cm("-s", "10.1.2.0/24"), "-j", chA), append(cm("-s", "10.7.0.9/32"), "-j", chA)},
		addrs: []netip.Prefix{v4A},
		want:  dumpA,
	}, {
		name: "reference order for two subnets is fixed",
		chain: []xtables.Rule{
			append(cm("-d", "10.1.2.0/24"), "-j", "ACCEPT"),
			append(cm("!", "-d", "224.0.0.0/4"), "-j", "MASQUERADE"),
			append(cm("-d", "10.9.0.0/16"), "-j", "ACCEPT"),
		},
		addrs: []netip.Prefix{v4A, netip.MustParsePrefix("10.9.0.7/16")},
		want: `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-f0bca4ac77cde1bf2f3da5df - [0:0]
-A POSTROUTING -s 10.1.2.5/32 -m comment --comment "name: \"mynet\" id: \"c1\"" -j CNI-f0bca4ac77cde1bf2f3da5df
-A POSTROUTING -s 10.9.0.7/32 -m comment --comment "name: \"mynet\" id: \"c1\"" -j CNI-f0bca4ac77cde1bf2f3da5df
-A CNI-f0bca4ac77cde1bf2f3da5df -d 10.1.2.0/24 -m comment --comment "name: \"mynet\" id: \"c1\"" -j ACCEPT
-A CNI-f0bca4ac77cde1bf2f3da5df -d 10.9.0.0/16 -m comment --comment "name: \"mynet\" id: \"c1\"" -j ACCEPT
-A CNI-f0bca4ac77cde1bf2f3da5df ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"c1\"" -j MASQUERADE
COMMIT
`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, f := newFakeMasq()
			tb := f.Tables[ipv4]
			if tc.chain != nil {
				tb.Chains[chA] = true
				tb.Rules[chA] = tc.chain
			}
			tb.Rules[postrouting] = tc.jumps
			if len(tc.chain) == 1 {
				if err := m.Check(keyA, tc.addrs); err == nil || !strings.Contains(err.Error(), "lacks rule") {
					t.Errorf("Check on a half-made chain: %v", err)
				}
			}
			if err := m.Ensure(keyA, tc.addrs); err != nil {
				t.Fatal(err)
			}
			if got := f.Dump(ipv4); got != tc.want {
				t.Errorf("table:\n%s\nwant:\n%s", got, tc.want)
			}
			if err := m.Check(keyA, tc.addrs); err != nil {
				t.Errorf("Check after Ensure: %v", err)
			}
		})
	}
}

func TestDualStackRemove(t *testing.T) {
	m, f := newFakeMasq()
	for _, k := range []firewall.Key{keyA, keyB, keyC} {
		if err := m.Ensure(k, []netip.Prefix{v4A, v6A}); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(f.Dump(ipv6), ":CNI-"); got != 3 {
		t.Fatalf("ip6tables has %d chains, want 3", got)
	}
	if err := m.Check(keyA, []netip.Prefix{v4A, v6A}); err != nil {
		t.Fatal(err)
	}

	before := runs(f)
	if err := m.Remove(keyA); err != nil {
		t.Fatal(err)
	}
	for _, fam := range xtables.Families() {
		d := f.Dump(fam)
		if strings.Contains(d, chA) {
			t.Errorf("%v still holds %s:\n%s", fam, chA, d)
		}
		if strings.Count(d, ":CNI-") != 2 || len(f.Tables[fam].Rules[postrouting]) != 2 {
			t.Errorf("%v lost another attachment's rules:\n%s", fam, d)
		}
	}
	// Per family a listing of POSTROUTING (whose jump says the chain exists) and one restore (-D jump,
	// -F, -X); no read of the whole table.
	if n := runs(f) - before; n != 4 || f.Saves != [2]int{} {
		t.Errorf("Remove ran iptables %d times (%v whole-table reads), want 4 and none", n, f.Saves)
	}
	err := m.Check(keyA, []netip.Prefix{v4A, v6A})
	if err == nil || !strings.Contains(err.Error(), "nat chain "+chA+" is missing") ||
		!strings.Contains(err.Error(), "ip6tables: POSTROUTING has no jump from fd00:1::5/128 to "+chA) {
		t.Errorf("Check after Remove: %v", err)
	}

	before, peeks := runs(f), f.Peeks
	if err := m.Remove(keyA); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	// Neither family has the chain, which the kernel tells without iptables (one look per family):
	// nothing runs.
	if n := runs(f) - before; n != 0 || f.Peeks[ipv4] != peeks[ipv4]+1 || f.Peeks[ipv6] != peeks[ipv6]+1 {
		t.Errorf("Remove of nothing ran iptables %d times (looked in the kernel %v times before, %v after), want none",
			n, peeks, f.Peeks)
	}
	// The cleanup of another backend's attachment asks for the chain first.
	c := newWithTools(f)
	c.cleanup = true
	before = runs(f)
	if err := c.Remove(keyA); err != nil {
		t.Fatalf("cleanup Remove of nothing: %v", err)
	}
	if n := runs(f) - before; n != 0 {
		t.Errorf("cleanup Remove of nothing ran iptables %d times, want none", n)
	}
	before = runs(f)
	if err := c.Remove(keyB); err != nil {
		t.Fatalf("cleanup Remove: %v", err)
	}
	if n := runs(f) - before; n != 6 || strings.Contains(f.Dump(ipv4)+f.Dump(ipv6), ChainName(keyB.Network, keyB.ContainerID)) {
		t.Errorf("cleanup Remove ran iptables %d times, want 6, and left:\n%s%s", n, f.Dump(ipv4), f.Dump(ipv6))
	}
}

func TestRemoveOrphanChain(t *testing.T) {
	m, f := newFakeMasq()
	if err := f.Load(ipv4, "*nat\n:POSTROUTING ACCEPT [0:0]\n:"+chA+" - [0:0]\n-A "+chA+" -d 10.1.2.0/24 -j ACCEPT\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(keyA); err != nil {
		t.Fatal(err)
	}
	if f.Tables[ipv4].Chains[chA] {
		t.Error("chain without jumps survived Remove")
	}
}

// A family whose tools are missing has nothing to remove; one that cannot take the lock fails the
// operation with code 11, naming the lock, the attachment and the family.
func TestFamilies(t *testing.T) {
	m, f := newFakeMasq()
	f.Missing[ipv6] = true
	if err := m.Ensure(keyA, []netip.Prefix{v4A}); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(keyA); err != nil {
		t.Errorf("Remove without ip6tables: %v", err)
	}
	if err := m.Ensure(keyA, []netip.Prefix{v6A}); err == nil {
		t.Error("an IPv6 Ensure without ip6tables succeeded")
	}

	m, f = newFakeMasq()
	if err := m.Ensure(keyA, []netip.Prefix{v4A, v6A}); err != nil {
		t.Fatal(err)
	}
	f.Locked[ipv6] = true
	restores := len(f.Restores[ipv6])
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"Ensure", func() error { return m.Ensure(keyB, []netip.Prefix{v4B, v6A}) }},
		{"Remove", func() error { return m.Remove(keyA) }},
		{"GC", func() error { return m.GC("mynet", nil) }},
	} {
		err := op.run()
		if conf.Code(err) != conf.CodeTryAgainLater || !strings.Contains(err.Error(), xtables.LockFile) ||
			!strings.Contains(err.Error(), "ip6tables") || !strings.Contains(err.Error(), "ipmasq") {
			t.Errorf("%s with the xtables lock held: %v (code %d), want code %d naming %s", op.name, err, conf.Code(err),
				conf.CodeTryAgainLater, xtables.LockFile)
		}
		if op.name == "Ensure" && !strings.Contains(f.Dump(ipv4), ChainName(keyB.Network, keyB.ContainerID)) {
			t.Error("the IPv4 change was not made before the IPv6 one failed")
		}
	}
	// Ensure and GC time out in their restore, Remove in its listing (the legacy build takes the lock
	// for `iptables -S`); none retries.
	if n := len(f.Restores[ipv6]) - restores; n != 2 {
		t.Errorf("%d IPv6 restores, want one per Ensure and GC (a lock timeout is not retried)", n)
	}
}

func TestGC(t *testing.T) {
	m, f := newFakeMasq()
	keyD := firewall.Key{Network: "mynet", ContainerID: "c4", IfName: "eth0"}
	for _, k := range []firewall.Key{keyA, keyB, keyC, keyD} {
		if err := m.Ensure(k, []netip.Prefix{v4A, v6A}); err != nil {
			t.Fatal(err)
		}
	}
	// keyD lost its jump in an interrupted DEL: its chain is found by its rules' comments.
	chD := ChainName(keyD.Network, keyD.ContainerID)
	for _, tb := range f.Tables {
		tb.Rules[postrouting] = slices.DeleteFunc(tb.Rules[postrouting], func(r xtables.Rule) bool { return r.Target() == chD })
	}
	// A foreign chain that looks like ours must stay.
	foreign := "CNI-0123456789abcdef01234567"
	f.Tables[ipv4].Chains[foreign] = true
	f.Tables[ipv4].Rules[foreign] = []xtables.Rule{{"-j", "ACCEPT"}}

	// keyB is valid under another interface name: iptables chains hold no ifname, so it stays.
	valid := map[conf.Attachment]bool{{ContainerID: "c2", IfName: "net1"}: true}
	if err := m.GC("mynet", valid); err != nil {
		t.Fatal(err)
	}
	chB, chC := ChainName(keyB.Network, keyB.ContainerID), ChainName(keyC.Network, keyC.ContainerID)
	for fam, tb := range f.Tables {
		for chain, want := range map[string]bool{chA: false, chD: false, chB: true, chC: true} {
			if tb.Chains[chain] != want {
				t.Errorf("%v: after GC chain %s exists: %v, want %v", xtables.Family(fam), chain, tb.Chains[chain], want)
			}
		}
	}
	if !f.Tables[ipv4].Chains[foreign] {
		t.Error("GC removed a chain it cannot attribute")
	}
	if err := m.Check(keyB, []netip.Prefix{v4A, v6A}); err != nil {
		t.Errorf("valid attachment broken by GC: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	m, f := newFakeMasq()
	if err := m.Ensure(firewall.Key{Network: "n", ContainerID: "", IfName: "eth0"}, []netip.Prefix{v4A}); err == nil {
		t.Error("empty container ID accepted")
	}
	if err := m.Ensure(keyA, []netip.Prefix{{}}); err == nil {
		t.Error("invalid prefix accepted")
	}
	if n := runs(f); n != 0 {
		t.Errorf("bad input ran iptables %d times", n)
	}
}

// An IPv4-only pod's Remove runs nothing for IPv6: the kernel tells that ip6tables has no chain of it.
func TestRemoveSkipsFamilyWithoutChain(t *testing.T) {
	m, f := newFakeMasq()
	if err := m.Ensure(keyA, []netip.Prefix{v4A}); err != nil {
		t.Fatal(err)
	}
	before := f.Lists[ipv6] + f.Saves[ipv6] + len(f.Restores[ipv6])
	if err := m.Remove(keyA); err != nil {
		t.Fatal(err)
	}
	if n := f.Lists[ipv6] + f.Saves[ipv6] + len(f.Restores[ipv6]) - before; n != 0 {
		t.Errorf("Remove of an IPv4-only pod ran ip6tables %d times, want none", n)
	}
	if d := f.Dump(ipv4); strings.Contains(d, chA) {
		t.Errorf("iptables still holds %s:\n%s", chA, d)
	}
}

// A DEL's hint (its prevResult's addresses) removes the attachment in one restore per family, without
// reading; a wrong hint costs the reads Remove makes, and still removes everything.
func TestRemoveHinted(t *testing.T) {
	v4Other := netip.MustParsePrefix("10.1.2.9/24")
	for _, tc := range []struct {
		name         string
		ensured      []netip.Prefix
		hint         []netip.Prefix
		restores     int // IPv4 restores of the RemoveHinted
		lists, saves int
	}{
		{"right hint", []netip.Prefix{v4A}, []netip.Prefix{v4A}, 1, 0, 0},
		// The guessed -D fails; then POSTROUTING is listed (its jump says the chain exists).
		{"another address", []netip.Prefix{v4A}, []netip.Prefix{v4Other}, 2, 1, 0},
		// The -D succeeds, the -X fails: another jump refers to the chain. The restore is refused whole.
		{"one of two addresses", []netip.Prefix{v4A, v4Other}, []netip.Prefix{v4A}, 2, 1, 0},
		{"no hint", []netip.Prefix{v4A}, nil, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, f := newFakeMasq()
			if err := m.Ensure(keyA, tc.ensured); err != nil {
				t.Fatal(err)
			}
			if err := m.Ensure(keyB, []netip.Prefix{v4B}); err != nil {
				t.Fatal(err)
			}
			restores, lists, saves := len(f.Restores[ipv4]), f.Lists[ipv4], f.Saves[ipv4]
			if err := m.RemoveHinted(keyA, tc.hint); err != nil {
				t.Fatal(err)
			}
			d := f.Dump(ipv4)
			if strings.Contains(d, chA) || !strings.Contains(d, ChainName(keyB.Network, keyB.ContainerID)) {
				t.Errorf("after RemoveHinted:\n%s", d)
			}
			if got := [3]int{len(f.Restores[ipv4]) - restores, f.Lists[ipv4] - lists, f.Saves[ipv4] - saves}; got != [3]int{tc.restores, tc.lists, tc.saves} {
				t.Errorf("restores, lists, saves = %v, want %v", got, [3]int{tc.restores, tc.lists, tc.saves})
			}
			if n := len(f.Restores[ipv6]) + f.Lists[ipv6] + f.Saves[ipv6]; n != 0 {
				t.Errorf("ip6tables ran %d times for an IPv4-only pod", n)
			}
		})
	}
}

// Where the nf_tables build alone may hold the table, Remove deletes the jumps and the chain without
// iptables, whatever the hint, and leaves the other attachments alone; where the kernel refuses, it
// falls back to the restore.
func TestRemoveWithoutIPTables(t *testing.T) {
	v4Other := netip.MustParsePrefix("10.1.2.9/24")
	for _, hint := range [][]netip.Prefix{nil, {v4A}, {v4Other}} {
		m, f := newFakeMasq()
		f.Kernel = [2]bool{true, true}
		for _, k := range []firewall.Key{keyA, keyB} {
			if err := m.Ensure(k, []netip.Prefix{v4A, v4Other, v6A}); err != nil {
				t.Fatal(err)
			}
		}
		before := runs(f)
		if err := m.RemoveHinted(keyA, hint); err != nil {
			t.Fatal(err)
		}
		if n := runs(f) - before; n != 0 {
			t.Errorf("hint %v: Remove ran iptables %d times, want none", hint, n)
		}
		for _, fam := range xtables.Families() {
			d := f.Dump(fam)
			if strings.Contains(d, chA) || !strings.Contains(d, ChainName(keyB.Network, keyB.ContainerID)) {
				t.Errorf("hint %v: %v after Remove:\n%s", hint, fam, d)
			}
			if got := f.Removals[fam]; !slices.Equal(got, []string{chA}) {
				t.Errorf("hint %v: %v removed %v without iptables, want %s", hint, fam, got, chA)
			}
		}
	}

	m, f := newFakeMasq()
	if err := m.Ensure(keyA, []netip.Prefix{v4A}); err != nil {
		t.Fatal(err)
	}
	f.Kernel[ipv4] = true
	// Another chain jumps to keyA's: the kernel would refuse to delete it, and so does iptables.
	if err := f.Restore(ipv4, "*nat\n-N OTHER\n-A OTHER -j "+chA+"\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	before := len(f.Restores[ipv4])
	if err := m.RemoveHinted(keyA, []netip.Prefix{v4A}); err == nil || !strings.Contains(err.Error(), "referenced") {
		t.Errorf("Remove of a chain another chain jumps to: %v, want iptables' refusal", err)
	}
	if len(f.Restores[ipv4]) == before || len(f.Removals[ipv4]) != 0 {
		t.Errorf("refused removal: %d restores, %v removed without iptables; want the restore's path", len(f.Restores[ipv4])-before, f.Removals[ipv4])
	}
}

func TestIsChainName(t *testing.T) {
	for name, want := range map[string]bool{
		"CNI-0123456789abcdef01234567": true, "CNI-0123456789ABCDEF01234567": false, "CNI-0123456789abcdef0123456": false,
		"CNI-0123456789abcdef012345678": false, "CNI-DN-0123456789abcdef01234": false, "XNI-0123456789abcdef01234567": false,
		"CNI-0123456789abcdef0123456g": false, "": false, "CNI-HOSTPORT-MASQ": false,
	} {
		if isChainName(name) != want {
			t.Errorf("isChainName(%q) = %v", name, !want)
		}
	}
}
