package iptables

import (
	"fmt"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/xtables"
	"github.com/netloom/netloom/test/harness"
)

// populate installs others attachments with one IPv4 mapping each, in one restore, as many Adds would
// leave them.
func populate(b *testing.B, m *Mapper, others int) {
	b.Helper()
	empty := newTable(xtables.NewTable())
	var bt batch
	bt.skeleton(empty, defaults)
	for i := range others {
		k := firewall.Key{Network: "benchnet", ContainerID: fmt.Sprintf("other%d", i), IfName: "eth0"}
		l := desired(k, mappings(b, fmt.Sprintf("tcp *:%d 10.60.%d.%d/16:80", 10000+i, i/250, i%250+2)), defaults, false)
		bt.edit(empty, chainEdit{chain: l.chain, rules: l.rules, front: l.front, back: l.back})
	}
	if err := m.run.Tools.Restore(ipv4, bt.Script(natTable)); err != nil {
		b.Fatal(err)
	}
}

// benchmark measures op (Add or Remove of one attachment with an IPv4 and an IPv6 mapping) in a
// namespace holding others attachments; setup puts the attachment in the state op starts from.
func benchmark(b *testing.B, op string) {
	harness.RequireRoot(b)
	k := firewall.Key{Network: "benchnet", ContainerID: "bench", IfName: "eth0"}
	ms := mappings(b, "tcp *:8080 10.61.0.5/24:80", "tcp *:8080 [fd61::5/64]:80")
	for _, v := range variants {
		for _, others := range []int{0, 100, 1000} {
			b.Run(fmt.Sprintf("%s/others=%d", v, others), func(b *testing.B) {
				n := harness.NewNetNS(b, "pmb")
				m := NewWithConfig(testConfig(b.TempDir(), v))
				add := func() error { return m.Add(k, ms, defaults) }
				remove := func() error { return m.Remove(k, nil) }
				measured, undo := add, remove
				if op == "remove" {
					measured, undo = remove, add
				}
				err := ns.WithNetNSPath(n.Path, func(ns.NetNS) error {
					populate(b, m, others)
					if op == "remove" {
						if err := add(); err != nil {
							return err
						}
					}
					b.ResetTimer()
					for range b.N {
						if err := measured(); err != nil {
							return err
						}
						b.StopTimer()
						if err := undo(); err != nil {
							return err
						}
						b.StartTimer()
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

func BenchmarkAdd(b *testing.B)    { benchmark(b, "add") }
func BenchmarkRemove(b *testing.B) { benchmark(b, "remove") }
