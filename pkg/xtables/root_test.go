package xtables_test

import (
	"bufio"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	fwipt "github.com/netloom/netloom/pkg/firewall/iptables"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/portmap"
	pmipt "github.com/netloom/netloom/pkg/portmap/iptables"
	"github.com/netloom/netloom/pkg/xtables"
	"github.com/netloom/netloom/test/harness"
)

// Root tests: each in network namespaces of its own, against both builds of iptables.

var variants = []xtables.Variant{xtables.VariantLegacy, xtables.VariantNFT}

// TestRootExec writes rules with awkward comments through the real tools and reads them back: what
// iptables-save prints parses to what was written, in both families and both builds.
func TestRootExec(t *testing.T) {
	harness.RequireRoot(t)
	rules := []xtables.Rule{
		{"-s", "10.1.2.5/32", "-m", "comment", "--comment", `name: "n\"e\\t" id: "c'1"`, "-j", "CNI-T"},
		{"!", "-d", "224.0.0.0/4", "-m", "comment", "--comment", "bare_word-1", "-j", "MASQUERADE"},
		{"-p", "tcp", "-m", "tcp", "--dport", "8080", "-m", "comment", "--comment", "a.b c", "-j", "DNAT", "--to-destination", "10.1.2.5:80"},
	}
	v6 := []xtables.Rule{
		{"-s", "fd00::5/128", "-m", "comment", "--comment", `x "y"`, "-j", "CNI-T"},
		{"-p", "udp", "-m", "udp", "--dport", "53", "-j", "DNAT", "--to-destination", "[fd00::5]:5353"},
	}
	for _, v := range variants {
		t.Run(string(v), func(t *testing.T) {
			n := harness.NewNetNS(t, "xtx")
			x := xtables.NewExec(xtables.Config{Variant: v})
			r := xtables.Runner{Tools: x, Table: "nat"}
			err := n.Do(func() error {
				for _, f := range xtables.Families() {
					if _, err := x.Probe(f, "nat"); err != nil {
						return fmt.Errorf("probe: %w", err)
					}
					want := map[xtables.Family][]xtables.Rule{xtables.IPv4: rules, xtables.IPv6: v6}[f]
					tb, err := r.Read(f)
					if err != nil {
						return err
					}
					err = r.Apply(f, tb, func(tb xtables.Table) (xtables.Batch, error) {
						var b xtables.Batch
						b.SetChain(tb, "CNI-T", want)
						return b, nil
					})
					if err != nil {
						return err
					}
					if tb, err = r.Read(f); err != nil {
						return err
					}
					if got := tb.Rules["CNI-T"]; !slices.EqualFunc(got, want, func(a, b xtables.Rule) bool { return slices.Equal(a, b) }) {
						return fmt.Errorf("%v: read back\n%q\nwant\n%q", f, got, want)
					}
					// `iptables -S` of the chain reads the same; a chain that does not exist is left out.
					if tb, err = r.ReadChains(f, "CNI-T", "CNI-NOSUCH", "POSTROUTING"); err != nil {
						return fmt.Errorf("%v: list: %w", f, err)
					}
					if got := tb.Rules["CNI-T"]; !tb.Chains["POSTROUTING"] || tb.Chains["CNI-NOSUCH"] ||
						!slices.EqualFunc(got, want, func(a, b xtables.Rule) bool { return slices.Equal(a, b) }) {
						return fmt.Errorf("%v: listed chains %v, CNI-T\n%q\nwant\n%q", f, tb.Chains, got, want)
					}
				}
				if _, err := xtables.NewExec(xtables.Config{Variant: "nosuch"}).Probe(xtables.IPv4, "nat"); err == nil {
					return fmt.Errorf("a missing build probes fine")
				}
				if err := xtables.NewExec(xtables.Config{Variant: "nosuch"}).ProbeChain(xtables.IPv4, "nat", "POSTROUTING"); err == nil {
					return fmt.Errorf("a missing build probes fine listing a chain")
				}
				for _, chain := range []string{"POSTROUTING", "CNI-NOSUCH"} {
					if err := x.ProbeChain(xtables.IPv6, "nat", chain); err != nil {
						return fmt.Errorf("probe listing %s: %w", chain, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// holdLock holds the xtables lock for d from another process, as kube-proxy or firewalld may, and
// returns when it is held.
func holdLock(t *testing.T, d time.Duration) time.Time {
	holder := exec.Command("flock", xtables.LockFile, "sh", "-c", fmt.Sprintf("echo locked; sleep %g", d.Seconds()))
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
	return time.Now()
}

// TestRootXtablesLock: both iptables backends wait for the xtables lock the same bounded way. With the
// lock held for two seconds, the legacy build's change waits for it and then succeeds, or with a short
// Wait gives up with code 11 naming the lock; the nf_tables build takes no such lock and goes ahead.
func TestRootXtablesLock(t *testing.T) {
	harness.RequireRoot(t)
	const hold = 2 * time.Second
	addrs := []netip.Prefix{netip.MustParsePrefix("10.22.0.5/24")}
	for _, backend := range []struct {
		name string
		// change makes attachment n's rules with the tools of v, waiting at most wait for the lock.
		change func(v xtables.Variant, wait time.Duration, n int) error
	}{
		{"masquerade", func(v xtables.Variant, wait time.Duration, n int) error {
			k := firewall.Key{Network: "locknet", ContainerID: fmt.Sprintf("c%d", n), IfName: "eth0"}
			return fwipt.NewWithConfig(xtables.Config{Variant: v, Wait: wait}).Ensure(k, addrs)
		}},
		{"portmap", func(v xtables.Variant, wait time.Duration, n int) error {
			k := firewall.Key{Network: "locknet", ContainerID: fmt.Sprintf("c%d", n), IfName: "eth0"}
			ms := []portmap.Mapping{{Protocol: portmap.TCP, HostPort: uint16(8080 + n), PodIP: addrs[0].Addr(), PodPort: 80, PodSubnet: addrs[0]}}
			c := pmipt.Config{Config: xtables.Config{Variant: v, Wait: wait}, LockFile: filepath.Join(t.TempDir(), "lock")}
			return pmipt.NewWithConfig(c).Add(k, ms, portmap.Options{SNAT: true, MarkMasqBit: portmap.DefaultMarkMasqBit})
		}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			n := harness.NewNetNS(t, "xtl")
			change := func(v xtables.Variant, wait time.Duration, i int) (time.Duration, error) {
				start := time.Now()
				err := n.Do(func() error { return backend.change(v, wait, i) })
				return time.Since(start), err
			}
			locked := holdLock(t, hold)
			// iptables-nft takes no xtables lock: the change is done while the lock is still held (a
			// wait for it would end after its holder lets go, hold after it took it).
			if d, err := change(xtables.VariantNFT, time.Second, 1); err != nil || time.Since(locked) >= hold {
				t.Errorf("nft change under the xtables lock: %v after %v, want success while the lock is held", err, d)
			}
			d, err := change(xtables.VariantLegacy, time.Second, 2)
			if conf.Code(err) != conf.CodeTryAgainLater || d < 900*time.Millisecond || !strings.Contains(err.Error(), xtables.LockFile) {
				t.Errorf("legacy change with Wait 1s under the lock: %v (code %d) after %v, want code %d naming %s after 1s",
					err, conf.Code(err), d, conf.CodeTryAgainLater, xtables.LockFile)
			} else {
				t.Logf("legacy change with Wait 1s: %v", err)
			}
			if d, err = change(xtables.VariantLegacy, xtables.DefaultWait, 3); err != nil {
				t.Fatalf("legacy change waiting for the lock: %v", err)
			}
			if since := time.Since(locked); since < hold-100*time.Millisecond {
				t.Errorf("legacy change returned %v after the lock was taken, before its holder let go (%v)", since, hold)
			}
			t.Logf("legacy change waited %v for the xtables lock", d)
			if s := n.Run(t, "iptables-legacy-save", "-t", "nat"); !strings.Contains(s, `id: \"c3\"`) || strings.Contains(s, `id: \"c2\"`) {
				t.Errorf("legacy nat table after the waits:\n%s", s)
			}
		})
	}
}

// TestRootDropChainAbsent: in a fresh namespace neither build has the chain, so DropChain finds it
// absent; once it exists, the nf_tables build's DropChain removes it, and the legacy build's, whose
// loaded table may hold any chain, leaves it (and any other chain) to a restore.
func TestRootDropChainAbsent(t *testing.T) {
	harness.RequireRoot(t)
	for _, v := range variants {
		t.Run(string(v), func(t *testing.T) {
			n := harness.NewNetNS(t, "xtm")
			x := xtables.NewExec(xtables.Config{Variant: v})
			legacy := v == xtables.VariantLegacy
			err := n.Do(func() error {
				for _, f := range xtables.Families() {
					if d := x.DropChain(f, "nat", "POSTROUTING", "CNI-M", nil); d != xtables.DropAbsent {
						return fmt.Errorf("%v: DropChain in a fresh namespace = %v, want absent", f, d)
					}
					if err := x.Restore(f, "*nat\n-N CNI-M\nCOMMIT\n"); err != nil {
						return err
					}
					other := x.DropChain(f, "nat", "POSTROUTING", "CNI-OTHER", nil)
					if want := map[bool]xtables.Drop{true: xtables.DropUnsure, false: xtables.DropAbsent}[legacy]; other != want {
						return fmt.Errorf("%v: DropChain(CNI-OTHER) = %v, want %v", f, other, want)
					}
					d := x.DropChain(f, "nat", "POSTROUTING", "CNI-M", nil)
					if want := map[bool]xtables.Drop{true: xtables.DropUnsure, false: xtables.DropDone}[legacy]; d != want {
						return fmt.Errorf("%v: DropChain(CNI-M) = %v, want %v", f, d, want)
					}
					if save, err := x.Save(f, "nat"); err != nil {
						return err
					} else if strings.Contains(save, ":CNI-M ") != legacy {
						return fmt.Errorf("%v: after DropChain = %v:\n%s", f, d, save)
					}
					if legacy {
						if err := x.Restore(f, "*nat\n-X CNI-M\nCOMMIT\n"); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRootRemoveHinted: the masquerade's guessed removal (a DEL's prevResult) against both builds: a
// restore that deletes one of a pod's two jumps and then its chain is refused whole (-X of a chain
// still referenced), and the fallback removes both jumps and the chain; a right hint leaves nothing.
func TestRootRemoveHinted(t *testing.T) {
	harness.RequireRoot(t)
	k := firewall.Key{Network: "hintnet", ContainerID: "c-hint", IfName: "eth0"}
	a, b := netip.MustParsePrefix("10.9.0.5/24"), netip.MustParsePrefix("10.9.1.5/24")
	chain := fwipt.ChainName(k.Network, k.ContainerID)
	for _, v := range variants {
		t.Run(string(v), func(t *testing.T) {
			n := harness.NewNetNS(t, "xth")
			x := xtables.NewExec(xtables.Config{Variant: v})
			m := fwipt.NewWithConfig(xtables.Config{Variant: v})
			err := n.Do(func() error {
				for _, hint := range [][]netip.Prefix{{a}, {a, b}} {
					if err := m.Ensure(k, []netip.Prefix{a, b}); err != nil {
						return err
					}
					if err := m.RemoveHinted(k, hint); err != nil {
						return err
					}
					out, err := x.Save(xtables.IPv4, "nat")
					if err != nil {
						return err
					}
					if strings.Contains(out, chain) {
						return fmt.Errorf("hint %v left:\n%s", hint, out)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRootDropChain: with the nf_tables build, DropChain deletes the chain, its rules and every
// POSTROUTING jump to it in one transaction, and nothing else (not a jump to another chain whose
// comment names it), calling its hook once just before; the kernel refuses when another chain still
// jumps to it, and the table is left as it was. With the legacy build it does nothing.
func TestRootDropChain(t *testing.T) {
	harness.RequireRoot(t)
	setup := map[xtables.Family]string{
		xtables.IPv4: "*nat\n-N CNI-R\n-N CNI-KEEP\n-A CNI-R -d 10.9.0.0/24 -j ACCEPT\n-A CNI-R -j MASQUERADE\n" +
			"-A POSTROUTING -s 10.9.0.5/32 -j CNI-R\n-A POSTROUTING -m comment --comment CNI-R -j CNI-KEEP\n" +
			"-A POSTROUTING -s 10.9.1.5/32 -m comment --comment \"name: x\" -j CNI-R\nCOMMIT\n",
		xtables.IPv6: "*nat\n-N CNI-R\n-N CNI-KEEP\n-A CNI-R -j MASQUERADE\n-A POSTROUTING -s fd00::5/128 -j CNI-R\n" +
			"-A POSTROUTING -m comment --comment CNI-R -j CNI-KEEP\nCOMMIT\n",
	}
	for _, v := range variants {
		t.Run(string(v), func(t *testing.T) {
			n := harness.NewNetNS(t, "xtr")
			x := xtables.NewExec(xtables.Config{Variant: v})
			err := n.Do(func() error {
				for _, f := range xtables.Families() {
					if err := x.Restore(f, setup[f]); err != nil {
						return err
					}
					before, err := x.Save(f, "nat")
					if err != nil {
						return err
					}
					// Another chain jumps to CNI-R: the kernel refuses, nothing changes.
					if err := x.Restore(f, "*nat\n-N OTHER\n-A OTHER -j CNI-R\nCOMMIT\n"); err != nil {
						return err
					}
					if d := x.DropChain(f, "nat", "POSTROUTING", "CNI-R", nil); d != xtables.DropUnsure {
						return fmt.Errorf("%v: DropChain = %v while OTHER jumps to CNI-R, want unsure", f, d)
					}
					if err := x.Restore(f, "*nat\n-F OTHER\n-X OTHER\nCOMMIT\n"); err != nil {
						return err
					}
					if after, _ := x.Save(f, "nat"); stripComments(after) != stripComments(before) {
						return fmt.Errorf("%v: a refused DropChain changed the table:\n%s\nwas:\n%s", f, after, before)
					}
					hooks := 0
					done := x.DropChain(f, "nat", "POSTROUTING", "CNI-R", func() { hooks++ }) == xtables.DropDone
					if want := v == xtables.VariantNFT; done != want || hooks != map[bool]int{true: 1, false: 0}[want] {
						return fmt.Errorf("%v: DropChain done %v with %d hook calls, want %v", f, done, hooks, want)
					}
					after, err := x.Save(f, "nat")
					if err != nil {
						return err
					}
					if !done {
						if stripComments(after) != stripComments(before) {
							return fmt.Errorf("%v: DropChain did nothing but the table changed:\n%s", f, after)
						}
						continue
					}
					if strings.Contains(after, "-j CNI-R") || strings.Contains(after, ":CNI-R ") ||
						!strings.Contains(after, "--comment CNI-R -j CNI-KEEP") {
						return fmt.Errorf("%v: after DropChain:\n%s", f, after)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// stripComments drops iptables-save's comment lines (with their date) for comparing two saves.
func stripComments(save string) string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRootAddChain: with the nf_tables build, AddChain writes the masquerade layout (a byte-aligned
// and a masked prefix, a negated one, comments, ACCEPT, MASQUERADE, a jump) exactly as
// iptables-nft-restore does: iptables-save and nft's netlink view of one namespace where AddChain
// wrote it and of another where the restore did are the same. The kernel refuses a chain that exists,
// and the table is left as it was. With the legacy build it does nothing.
func TestRootAddChain(t *testing.T) {
	harness.RequireRoot(t)
	comment := `name: "n\"e" id: "c'1"`
	rule := func(s ...string) xtables.Rule {
		return append(xtables.Rule(s[:len(s)-1]), "-m", "comment", "--comment", comment, "-j", s[len(s)-1])
	}
	rules := map[xtables.Family][]xtables.Rule{
		xtables.IPv4: {rule("-d", "10.9.0.0/24", "ACCEPT"), rule("-d", "10.9.16.0/20", "ACCEPT"), rule("!", "-d", "224.0.0.0/4", "MASQUERADE")},
		xtables.IPv6: {rule("-d", "fd00:9::/64", "ACCEPT"), rule("-d", "fd00:9:0:10::/60", "ACCEPT"), rule("!", "-d", "ff00::/8", "MASQUERADE")},
	}
	jumps := map[xtables.Family][]xtables.Rule{
		xtables.IPv4: {rule("-s", "10.9.0.5/32", "CNI-A"), rule("-s", "10.9.16.5/32", "CNI-A")},
		xtables.IPv6: {rule("-s", "fd00:9::5/128", "CNI-A")},
	}
	// netlinkView is every rule of f's nat table as the kernel holds it, each expression's attributes
	// in full (the compat match's comment, the target's range), handles left out.
	netlinkView := func(n harness.NetNS, f xtables.Family) string {
		var b strings.Builder
		err := n.Do(func() error {
			c, err := nftnl.Dial()
			if err != nil {
				return err
			}
			defer c.Close()
			tb := nftnl.Table{Family: map[xtables.Family]byte{xtables.IPv4: unix.NFPROTO_IPV4, xtables.IPv6: unix.NFPROTO_IPV6}[f], Name: "nat"}
			for _, chain := range []string{"POSTROUTING", "CNI-A"} {
				rs, err := c.Rules(tb, chain)
				if err != nil {
					return err
				}
				for _, r := range rs {
					exprs, err := r.Expressions()
					if err != nil {
						return err
					}
					fmt.Fprintf(&b, "%s %q: %s\n", chain, r.Comment, expr.Describe(exprs))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for _, v := range variants {
		t.Run(string(v), func(t *testing.T) {
			x := xtables.NewExec(xtables.Config{Variant: v})
			ours, theirs := harness.NewNetNS(t, "xta"), harness.NewNetNS(t, "xtb")
			for _, f := range xtables.Families() {
				init := "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
				var b xtables.Batch
				b.SetChain(xtables.NewTable(), "CNI-A", rules[f])
				for _, j := range jumps[f] {
					b.Append("POSTROUTING", j)
				}
				var added bool
				hooks := 0
				if err := ours.Do(func() error {
					if err := x.Restore(f, init); err != nil {
						return err
					}
					added = x.AddChain(f, "nat", "POSTROUTING", "CNI-A", rules[f], jumps[f], func() { hooks++ })
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if want := v == xtables.VariantNFT; added != want || hooks != map[bool]int{true: 1, false: 0}[want] {
					t.Fatalf("%v: AddChain %v with %d hook calls, want %v", f, added, hooks, want)
				}
				if !added {
					continue
				}
				var mine, want string
				if err := theirs.Do(func() error {
					if err := x.Restore(f, init); err != nil {
						return err
					}
					if err := x.Restore(f, b.Script("nat")); err != nil {
						return err
					}
					var err error
					want, err = x.Save(f, "nat")
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if err := ours.Do(func() error {
					var err error
					mine, err = x.Save(f, "nat")
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if stripComments(mine) != stripComments(want) {
					t.Errorf("%v: iptables-save after AddChain:\n%s\nafter iptables-restore:\n%s", f, mine, want)
				}
				if got, want := netlinkView(ours, f), netlinkView(theirs, f); got != want || !strings.Contains(got, "MASQUERADE") {
					t.Errorf("%v: nf_tables after AddChain:\n%s\nafter iptables-restore:\n%s", f, got, want)
				}
				// The chain exists now: the kernel refuses the transaction whole.
				if err := ours.Do(func() error {
					if x.AddChain(f, "nat", "POSTROUTING", "CNI-A", rules[f], jumps[f], nil) {
						return fmt.Errorf("%v: AddChain of a chain that exists succeeded", f)
					}
					again, err := x.Save(f, "nat")
					if err == nil && stripComments(again) != stripComments(mine) {
						err = fmt.Errorf("%v: a refused AddChain changed the table:\n%s", f, again)
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
