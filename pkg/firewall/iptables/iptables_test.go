package iptables

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/utils"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
)

var (
	keyA  = firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "eth0"}
	keyB  = firewall.Key{Network: "mynet", ContainerID: "c2", IfName: "eth0"}
	keyC  = firewall.Key{Network: "other", ContainerID: "c1", IfName: "eth0"}
	v4A   = netip.MustParsePrefix("10.1.2.5/24")
	v4B   = netip.MustParsePrefix("10.1.2.6/24")
	v6A   = netip.MustParsePrefix("fd00:1::5/64")
	chA   = "CNI-f0bca4ac77cde1bf2f3da5df" // the reference's utils.FormatChainName("mynet", "c1")
	cmtA  = `"name: \"mynet\" id: \"c1\""` // as iptables -S prints it
	dumpA = `-P POSTROUTING ACCEPT
-N CNI-f0bca4ac77cde1bf2f3da5df
-A POSTROUTING -s 10.1.2.5/32 -m comment --comment "name: \"mynet\" id: \"c1\"" -j CNI-f0bca4ac77cde1bf2f3da5df
-A CNI-f0bca4ac77cde1bf2f3da5df -d 10.1.2.0/24 -m comment --comment "name: \"mynet\" id: \"c1\"" -j ACCEPT
-A CNI-f0bca4ac77cde1bf2f3da5df ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"c1\"" -j MASQUERADE
`
)

// newFakeMasq returns a Masq over two fake tables and the log of iptables runs they share.
func newFakeMasq() (*Masq, [2]*fakeIPT, *[]string) {
	calls := &[]string{}
	fakes := [2]*fakeIPT{newFake("iptables", calls), newFake("ip6tables", calls)}
	m := newWithClient(func(f family) (client, error) {
		*calls = append(*calls, f.String()+" --version")
		return fakes[f], nil
	})
	return m, fakes, calls
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

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`-A X -s 10.0.0.1/32 -j Y`, []string{"-A", "X", "-s", "10.0.0.1/32", "-j", "Y"}},
		{`-A X -m comment --comment simple -j Y`, []string{"-A", "X", "-m", "comment", "--comment", "simple", "-j", "Y"}},
		{`-A X -m comment --comment "name: \"a\\\\b\'c\" id: \"1\"" -j Y`,
			[]string{"-A", "X", "-m", "comment", "--comment", `name: "a\\b'c" id: "1"`, "-j", "Y"}},
		{`-A X -m comment --comment "" -j Y`, []string{"-A", "X", "-m", "comment", "--comment", "", "-j", "Y"}},
		{"  a\t b\"c d\"e \"\\\"\"  ", []string{"a", `bc de`, `"`}},
	} {
		got, err := SplitWords(tc.line)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SplitWords(%s) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	if _, err := SplitWords(`-A X --comment "open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestDesired(t *testing.T) {
	l := desired("mynet", "c1", []netip.Prefix{v4A, netip.MustParsePrefix("10.9.0.7/16"), v4B})
	var got []string
	for _, r := range l.rules {
		got = append(got, render(r))
	}
	for _, j := range l.jumps {
		got = append(got, render(j))
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
	if got := render(l6.rules[1]); got != `! -d ff00::/8 -m comment --comment `+cmtA+` -j MASQUERADE` {
		t.Errorf("v6 masquerade rule: %s", got)
	}
	if got := render(l6.jumps[0]); got != `-s fd00:1::5/128 -m comment --comment `+cmtA+` -j `+chA {
		t.Errorf("v6 jump: %s", got)
	}
}

func TestEnsureFresh(t *testing.T) {
	m, fakes, calls := newFakeMasq()
	if err := m.Ensure(keyA, []netip.Prefix{v4A}); err != nil {
		t.Fatal(err)
	}
	if got := fakes[ipv4].dump(); got != dumpA {
		t.Errorf("table:\n%s\nwant:\n%s", got, dumpA)
	}
	want := []string{
		"iptables --version",
		"iptables -t nat -S POSTROUTING",
		"iptables -t nat -N " + chA,
		"iptables -t nat -A " + chA + " -d 10.1.2.0/24 -m comment --comment " + cmtA + " -j ACCEPT",
		"iptables -t nat -A " + chA + " ! -d 224.0.0.0/4 -m comment --comment " + cmtA + " -j MASQUERADE",
		"iptables -t nat -A POSTROUTING -s 10.1.2.5/32 -m comment --comment " + cmtA + " -j " + chA,
	}
	if !slices.Equal(*calls, want) {
		t.Errorf("runs:\n%s\nwant:\n%s", strings.Join(*calls, "\n"), strings.Join(want, "\n"))
	}
	if len(fakes[ipv6].order) != 0 || len(fakes[ipv6].chains[postrouting]) != 0 {
		t.Error("an IPv4-only Ensure touched ip6tables")
	}

	// Again: nothing to change, two listings.
	*calls = nil
	if err := m.Ensure(keyA, []netip.Prefix{v4A}); err != nil {
		t.Fatal(err)
	}
	if len(*calls) != 2 {
		t.Errorf("idempotent Ensure ran iptables %d times: %q", len(*calls), *calls)
	}
	if got := fakes[ipv4].dump(); got != dumpA {
		t.Errorf("table after second Ensure:\n%s", got)
	}
	if err := m.Check(keyA, []netip.Prefix{v4A}); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestEnsureRepairs(t *testing.T) {
	comment := Comment("mynet", "c1")
	cm := func(s ...string) spec { return append(spec(s), "-m", "comment", "--comment", comment) }
	for _, tc := range []struct {
		name  string
		chain []spec // preset content of chA, nil: no chain
		jumps []spec // preset POSTROUTING rules
		addrs []netip.Prefix
		want  string
	}{{
		name: "reference layout is adopted as is",
		chain: []spec{
			append(cm("-d", "10.1.2.0/24"), "-j", "ACCEPT"),
			append(cm("!", "-d", "224.0.0.0/4"), "-j", "MASQUERADE"),
		},
		jumps: []spec{append(cm("-s", "10.1.2.5/32"), "-j", chA)},
		addrs: []netip.Prefix{v4A},
		want:  dumpA,
	}, {
		name:  "half-made chain is completed",
		chain: []spec{append(cm("-d", "10.1.2.0/24"), "-j", "ACCEPT")},
		addrs: []netip.Prefix{v4A},
		want:  dumpA,
	}, {
		name:  "old subnet jump and changed address are replaced",
		chain: []spec{append(cm("-d", "10.7.0.0/16"), "-j", "ACCEPT"), append(cm("!", "-d", "224.0.0.0/4"), "-j", "MASQUERADE")},
		jumps: []spec{append(cm("-s", "10.1.2.0/24"), "-j", chA), append(cm("-s", "10.7.0.9/32"), "-j", chA)},
		addrs: []netip.Prefix{v4A},
		want:  dumpA,
	}, {
		name: "reference order for two subnets is fixed",
		chain: []spec{
			append(cm("-d", "10.1.2.0/24"), "-j", "ACCEPT"),
			append(cm("!", "-d", "224.0.0.0/4"), "-j", "MASQUERADE"),
			append(cm("-d", "10.9.0.0/16"), "-j", "ACCEPT"),
		},
		addrs: []netip.Prefix{v4A, netip.MustParsePrefix("10.9.0.7/16")},
		want: `-P POSTROUTING ACCEPT
-N CNI-f0bca4ac77cde1bf2f3da5df
-A POSTROUTING -s 10.1.2.5/32 -m comment --comment "name: \"mynet\" id: \"c1\"" -j CNI-f0bca4ac77cde1bf2f3da5df
-A POSTROUTING -s 10.9.0.7/32 -m comment --comment "name: \"mynet\" id: \"c1\"" -j CNI-f0bca4ac77cde1bf2f3da5df
-A CNI-f0bca4ac77cde1bf2f3da5df -d 10.1.2.0/24 -m comment --comment "name: \"mynet\" id: \"c1\"" -j ACCEPT
-A CNI-f0bca4ac77cde1bf2f3da5df -d 10.9.0.0/16 -m comment --comment "name: \"mynet\" id: \"c1\"" -j ACCEPT
-A CNI-f0bca4ac77cde1bf2f3da5df ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"c1\"" -j MASQUERADE
`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, fakes, _ := newFakeMasq()
			f := fakes[ipv4]
			if tc.chain != nil {
				f.chains[chA] = tc.chain
				f.order = []string{chA}
			}
			f.chains[postrouting] = tc.jumps
			if len(tc.chain) == 1 {
				if err := m.Check(keyA, tc.addrs); err == nil || !strings.Contains(err.Error(), "lacks rule") {
					t.Errorf("Check on a half-made chain: %v", err)
				}
			}
			if err := m.Ensure(keyA, tc.addrs); err != nil {
				t.Fatal(err)
			}
			if got := f.dump(); got != tc.want {
				t.Errorf("table:\n%s\nwant:\n%s", got, tc.want)
			}
			if err := m.Check(keyA, tc.addrs); err != nil {
				t.Errorf("Check after Ensure: %v", err)
			}
		})
	}
}

func TestDualStackRemove(t *testing.T) {
	m, fakes, calls := newFakeMasq()
	for _, k := range []firewall.Key{keyA, keyB, keyC} {
		if err := m.Ensure(k, []netip.Prefix{v4A, v6A}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(fakes[ipv6].order); got != 3 {
		t.Fatalf("ip6tables has %d chains, want 3", got)
	}
	if err := m.Check(keyA, []netip.Prefix{v4A, v6A}); err != nil {
		t.Fatal(err)
	}

	*calls = nil
	if err := m.Remove(keyA); err != nil {
		t.Fatal(err)
	}
	for _, f := range fakes {
		if slices.Contains(f.order, chA) || strings.Contains(f.dump(), chA) {
			t.Errorf("%s still holds %s:\n%s", f.family, chA, f.dump())
		}
		if len(f.order) != 2 || len(f.chains[postrouting]) != 2 {
			t.Errorf("%s lost another attachment's rules:\n%s", f.family, f.dump())
		}
	}
	// -S POSTROUTING, -S chain, -D jump, -F, -X in each family: against the kernel the batch client makes
	// the reads one `iptables -S` and the changes one iptables-restore run per family.
	if len(*calls) != 10 {
		t.Errorf("Remove ran iptables %d times:\n%s", len(*calls), strings.Join(*calls, "\n"))
	}
	err := m.Check(keyA, []netip.Prefix{v4A, v6A})
	if err == nil || !strings.Contains(err.Error(), "nat chain "+chA+" is missing") ||
		!strings.Contains(err.Error(), "ip6tables: POSTROUTING has no jump from fd00:1::5/128 to "+chA) {
		t.Errorf("Check after Remove: %v", err)
	}

	*calls = nil
	if err := m.Remove(keyA); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if len(*calls) != 4 {
		t.Errorf("Remove of nothing ran iptables %d times: %q", len(*calls), *calls)
	}
}

func TestRemoveOrphanChain(t *testing.T) {
	m, fakes, _ := newFakeMasq()
	fakes[ipv4].chains[chA] = []spec{{"-d", "10.1.2.0/24", "-j", "ACCEPT"}}
	fakes[ipv4].order = []string{chA}
	if err := m.Remove(keyA); err != nil {
		t.Fatal(err)
	}
	if _, ok := fakes[ipv4].chains[chA]; ok {
		t.Error("chain without jumps survived Remove")
	}
}

func TestGC(t *testing.T) {
	m, fakes, _ := newFakeMasq()
	keyD := firewall.Key{Network: "mynet", ContainerID: "c4", IfName: "eth0"}
	for _, k := range []firewall.Key{keyA, keyB, keyC, keyD} {
		if err := m.Ensure(k, []netip.Prefix{v4A, v6A}); err != nil {
			t.Fatal(err)
		}
	}
	// keyD lost its jump in an interrupted DEL: its chain is found by its rules' comments.
	chD := ChainName(keyD.Network, keyD.ContainerID)
	for _, f := range fakes {
		f.chains[postrouting] = slices.DeleteFunc(f.chains[postrouting], func(s spec) bool { return s.target() == chD })
	}
	// A foreign chain that looks like ours must stay.
	fakes[ipv4].chains["CNI-0123456789abcdef01234567"] = []spec{{"-j", "ACCEPT"}}
	fakes[ipv4].order = append(fakes[ipv4].order, "CNI-0123456789abcdef01234567")

	// keyB is valid under another interface name: iptables chains hold no ifname, so it stays.
	valid := map[conf.Attachment]bool{{ContainerID: "c2", IfName: "net1"}: true}
	if err := m.GC("mynet", valid); err != nil {
		t.Fatal(err)
	}
	chB, chC := ChainName(keyB.Network, keyB.ContainerID), ChainName(keyC.Network, keyC.ContainerID)
	for _, f := range fakes {
		if _, ok := f.chains[chA]; ok {
			t.Errorf("%s: GC kept invalid %s", f.family, chA)
		}
		if _, ok := f.chains[chD]; ok {
			t.Errorf("%s: GC kept orphan %s", f.family, chD)
		}
		if _, ok := f.chains[chB]; !ok {
			t.Errorf("%s: GC removed valid %s", f.family, chB)
		}
		if _, ok := f.chains[chC]; !ok {
			t.Errorf("%s: GC removed other network's %s", f.family, chC)
		}
	}
	if _, ok := fakes[ipv4].chains["CNI-0123456789abcdef01234567"]; !ok {
		t.Error("GC removed a chain it cannot attribute")
	}
	if err := m.Check(keyB, []netip.Prefix{v4A, v6A}); err != nil {
		t.Errorf("valid attachment broken by GC: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	m, _, calls := newFakeMasq()
	if err := m.Ensure(firewall.Key{Network: "n", ContainerID: "", IfName: "eth0"}, []netip.Prefix{v4A}); err == nil {
		t.Error("empty container ID accepted")
	}
	if err := m.Ensure(keyA, []netip.Prefix{{}}); err == nil {
		t.Error("invalid prefix accepted")
	}
	if len(*calls) != 0 {
		t.Errorf("bad input ran iptables: %q", *calls)
	}
}
