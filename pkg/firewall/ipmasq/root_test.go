package ipmasq

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	refip "github.com/containernetworking/plugins/pkg/ip"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/internal/fwtest"
	"github.com/netloom/netloom/pkg/firewall/iptables"
	"github.com/netloom/netloom/pkg/firewall/nftables"
)

var (
	keyA = firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "eth0"}
	keyB = firewall.Key{Network: "mynet", ContainerID: "c2", IfName: "eth0"}
	keyC = firewall.Key{Network: "other", ContainerID: "c3", IfName: "eth0"}
	keyD = firewall.Key{Network: "mynet", ContainerID: "c4", IfName: "eth0"}

	addrsA = prefixes("10.88.0.5/16", "fd88::5/64")
	addrsB = prefixes("10.88.0.6/16", "fd88::6/64")
	addrsC = prefixes("10.99.0.5/24")
	addrsD = prefixes("10.88.0.7/16", "fd88::7/64")
)

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// backend describes how to see one backend's work in a namespace.
type backend struct {
	name string
	new  func(testing.TB) firewall.Masquerader
	dump func(t *testing.T, n fwtest.NetNS) string
	// marker is text that appears perFamily times in dump for each IP family of k's rules.
	marker    func(k firewall.Key) string
	perFamily int
}

var backends = []backend{{
	name: "iptables",
	new:  func(testing.TB) firewall.Masquerader { return iptables.New() },
	dump: func(t *testing.T, n fwtest.NetNS) string {
		return n.Run(t, "iptables", "-t", "nat", "-S") + n.Run(t, "ip6tables", "-t", "nat", "-S")
	},
	marker: func(k firewall.Key) string { return iptables.ChainName(k.Network, k.ContainerID) },
	// -N chain, two rules in it, one POSTROUTING jump (one address per family here)
	perFamily: 4,
}, {
	name:      "nftables",
	new:       func(t testing.TB) firewall.Masquerader { return nftables.NewWithRecords(t.TempDir()) },
	dump:      func(t *testing.T, n fwtest.NetNS) string { return n.Run(t, "nft", "list", "ruleset") },
	marker:    nftables.Comment,
	perFamily: 1,
}}

func do(t *testing.T, n fwtest.NetNS, f func() error) {
	t.Helper()
	if err := n.Do(f); err != nil {
		t.Fatal(err)
	}
}

func sortedLines(s string) string {
	l := strings.Split(s, "\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}

func TestBackendsInNetNS(t *testing.T) {
	fwtest.RequireRoot(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			n := fwtest.NewNetNS(t, "fwc")
			m := b.new(t)
			count := func(k firewall.Key) int { return strings.Count(b.dump(t, n), b.marker(k)) }
			want := func(k firewall.Key, families int) {
				t.Helper()
				if got := count(k); got != families*b.perFamily {
					t.Errorf("%v: marker %q found %d times, want %d:\n%s", k, b.marker(k), got, families*b.perFamily, b.dump(t, n))
				}
			}

			do(t, n, func() error {
				for _, e := range []struct {
					k     firewall.Key
					addrs []netip.Prefix
				}{{keyA, addrsA}, {keyB, addrsB}, {keyC, addrsC}, {keyD, addrsD}} {
					if err := m.Ensure(e.k, e.addrs); err != nil {
						return err
					}
				}
				return nil
			})
			want(keyA, 2)
			want(keyC, 1)
			do(t, n, func() error { return m.Check(keyA, addrsA) })
			if err := n.Do(func() error { return m.Check(keyA, prefixes("10.88.0.9/16")) }); err == nil {
				t.Error("Check passed for an address that has no rule")
			} else {
				t.Logf("Check of a missing address: %v", err)
			}

			before := sortedLines(b.dump(t, n))
			do(t, n, func() error { return m.Ensure(keyA, addrsA) })
			if after := sortedLines(b.dump(t, n)); after != before {
				t.Errorf("second Ensure changed the ruleset:\n%s\nwas:\n%s", after, before)
			}

			do(t, n, func() error { return m.Remove(keyA) })
			want(keyA, 0)
			want(keyB, 2)
			want(keyC, 1)
			if err := n.Do(func() error { return m.Check(keyA, addrsA) }); err == nil {
				t.Error("Check passed after Remove")
			}
			do(t, n, func() error { return m.Remove(keyA) })
			do(t, n, func() error { return m.Check(keyB, addrsB) })

			valid := map[conf.Attachment]bool{keyB.Attachment(): true}
			do(t, n, func() error { return m.GC("mynet", valid) })
			want(keyD, 0)
			want(keyB, 2)
			want(keyC, 1)
			do(t, n, func() error { return m.Check(keyB, addrsB) })

			do(t, n, func() error {
				if err := m.Remove(keyB); err != nil {
					return err
				}
				return m.Remove(keyC)
			})
			if d := b.dump(t, n); strings.Contains(d, "CNI-") || strings.Contains(d, "masquerade comment") {
				t.Errorf("rules left after removing everything:\n%s", d)
			}
		})
	}
}

func TestGoldenLayout(t *testing.T) {
	fwtest.RequireRoot(t)
	chain := iptables.ChainName("mynet", "c1")
	for _, tc := range []struct {
		b    backend
		dump []string
		want string
	}{{
		b:    backends[0],
		dump: []string{"iptables", "-t", "nat", "-S"},
		want: `-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N ` + chain + `
-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"mynet\" id: \"c1\"" -j ` + chain + `
-A ` + chain + ` -d 10.88.0.0/16 -m comment --comment "name: \"mynet\" id: \"c1\"" -j ACCEPT
-A ` + chain + ` ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"c1\"" -j MASQUERADE
`,
	}, {
		b:    backends[1],
		dump: []string{"nft", "list", "ruleset"},
		want: `table inet cni_plugins_masquerade {
	chain masq_checks {
		ip saddr 10.88.0.5 ip daddr != 10.88.0.0/16 masquerade comment "d23676b4f2d9fe04-f4d01f2ef4b92245, net: mynet, if: eth0, id: c1"
		ip6 saddr fd88::5 ip6 daddr != fd88::/64 masquerade comment "d23676b4f2d9fe04-f4d01f2ef4b92245, net: mynet, if: eth0, id: c1"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip daddr 224.0.0.0/4 return
		ip6 daddr ff00::/8 return
		goto masq_checks
	}
}
`,
	}} {
		t.Run(tc.b.name, func(t *testing.T) {
			n := fwtest.NewNetNS(t, "fwg")
			m := tc.b.new(t)
			do(t, n, func() error { return m.Ensure(keyA, addrsA) })
			if got := n.Run(t, tc.dump...); got != tc.want {
				t.Errorf("%s:\n%s\nwant:\n%s", strings.Join(tc.dump, " "), got, tc.want)
			}
		})
	}
}

// refIPNets converts addrs to what the reference functions take.
func refIPNets(addrs []netip.Prefix) []*net.IPNet {
	var out []*net.IPNet
	for _, a := range addrs {
		out = append(out, &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())})
	}
	return out
}

func refSetup(backend string, k firewall.Key, addrs []netip.Prefix) error {
	return refip.SetupIPMasqForNetworks(&backend, refIPNets(addrs), k.Network, k.IfName, k.ContainerID)
}

func refTeardown(k firewall.Key, addrs []netip.Prefix) error {
	return refip.TeardownIPMasqForNetworks(refIPNets(addrs), k.Network, k.IfName, k.ContainerID)
}

// TestInteropWithReference runs the reference plugins' own masquerade code (containernetworking/plugins
// pkg/ip) against ours in one namespace: each side must see, keep and remove the other's rules.
func TestInteropWithReference(t *testing.T) {
	fwtest.RequireRoot(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			n := fwtest.NewNetNS(t, "fwi")
			m := b.new(t)
			count := func(k firewall.Key) int { return strings.Count(b.dump(t, n), b.marker(k)) }

			// Theirs, then ours: Check accepts it, Remove removes it. (The nftables backend's Ensure of an
			// attachment it has no record of adds its rules without looking for others': a runtime does
			// not ADD an attachment twice without a DEL in between.)
			do(t, n, func() error { return refSetup(b.name, keyA, addrsA) })
			do(t, n, func() error { return m.Check(keyA, addrsA) })
			if b.name == "iptables" {
				do(t, n, func() error { return m.Ensure(keyA, addrsA) })
				if got := count(keyA); got != 2*b.perFamily {
					t.Errorf("after reference ADD and our Ensure: %d markers, want %d:\n%s", got, 2*b.perFamily, b.dump(t, n))
				}
			}
			do(t, n, func() error { return m.Remove(keyA) })
			if got := count(keyA); got != 0 {
				t.Errorf("our Remove left %d of the reference's markers:\n%s", got, b.dump(t, n))
			}

			// Ours, then theirs: the reference's ADD finds nothing to add, its DEL removes ours.
			do(t, n, func() error { return m.Ensure(keyA, addrsA) })
			do(t, n, func() error { return refSetup(b.name, keyA, addrsA) })
			if got := count(keyA); got != 2*b.perFamily {
				t.Errorf("after our Ensure and reference ADD: %d markers, want %d:\n%s", got, 2*b.perFamily, b.dump(t, n))
			}
			do(t, n, func() error { return refTeardown(keyA, addrsA) })
			if got := count(keyA); got != 0 {
				t.Errorf("reference DEL left %d of our markers:\n%s", got, b.dump(t, n))
			}

			// GC across sides (the reference has GC for nftables only).
			do(t, n, func() error { return refSetup(b.name, keyB, addrsB) })
			do(t, n, func() error { return m.Ensure(keyD, addrsD) })
			do(t, n, func() error { return m.GC("mynet", map[conf.Attachment]bool{keyD.Attachment(): true}) })
			if count(keyB) != 0 || count(keyD) != 2*b.perFamily {
				t.Errorf("our GC: reference rules %d (want 0), valid ones %d:\n%s", count(keyB), count(keyD), b.dump(t, n))
			}
			if b.name == "nftables" {
				do(t, n, func() error { return m.Ensure(keyB, addrsB) })
				do(t, n, func() error {
					return refip.GCIPMasqForNetwork("mynet", []types.GCAttachment{{ContainerID: keyD.ContainerID, IfName: keyD.IfName}})
				})
				if count(keyB) != 0 || count(keyD) != 2 {
					t.Errorf("reference GC: ours-invalid %d (want 0), ours-valid %d (want 2):\n%s", count(keyB), count(keyD), b.dump(t, n))
				}
			}
		})
	}
}

// TestRemoveSweepsBothBackends: a node that switched ipMasqBackend still cleans the old backend's rules.
func TestRemoveSweepsBothBackends(t *testing.T) {
	fwtest.RequireRoot(t)
	n := fwtest.NewNetNS(t, "fwb")
	do(t, n, func() error {
		if err := iptables.New().Ensure(keyA, addrsA); err != nil {
			return err
		}
		return nftables.New().Ensure(keyB, addrsB)
	})
	do(t, n, func() error {
		ipt, err := New(firewall.BackendIPTables)
		if err != nil {
			return err
		}
		nft, err := New(firewall.BackendNFTables)
		if err != nil {
			return err
		}
		if err := nft.Remove(keyA); err != nil {
			return err
		}
		if err := ipt.Check(keyA, addrsA); err == nil {
			return fmt.Errorf("iptables rules of %v survived an nftables-configured Remove", keyA)
		}
		if err := nft.Check(keyB, addrsB); err != nil {
			return err
		}
		return ipt.GC("mynet", nil)
	})
	if d := n.Run(t, "nft", "list", "ruleset"); strings.Contains(d, "masquerade comment") {
		t.Errorf("nftables rules survived an iptables-configured GC:\n%s", d)
	}
	if _, err := New("ebpf"); err == nil {
		t.Error("unknown backend accepted")
	}
	do(t, n, func() error {
		m, err := New("")
		if err != nil {
			return err
		}
		if err := m.Ensure(keyA, addrsA); err != nil {
			return err
		}
		if got := m.(*both).primary; fmt.Sprintf("%T", got) != "*iptables.Masq" {
			return fmt.Errorf("default backend is %T where iptables works; the reference picks iptables", got)
		}
		if err := iptables.New().Check(keyA, addrsA); err != nil {
			return fmt.Errorf("the default backend's Ensure: %w", err)
		}
		return m.Remove(keyA)
	})
}
