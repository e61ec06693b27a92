package nftables

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/internal/fwtest"
)

// benchOthers are the numbers of other attachments' rules BenchmarkEnsureRemove times against: an
// empty node and a full one (issue 15's 1,000 pods).
var benchOthers = []int{0, 1000}

// BenchmarkEnsureRemove times one attachment's masquerade ADD, CHECK and DEL (Ensure, Check, Remove,
// both families) in fresh namespaces whose tables already hold 0 and 1,000 other attachments' rules, as
// on a node that runs pods: one namespace per size, timed in turn, iteration by iteration, so that
// load from elsewhere on the machine falls on both alike.
//
//	go test ./pkg/firewall/nftables -run '^$' -bench EnsureRemove -benchtime 200x
func BenchmarkEnsureRemove(b *testing.B) {
	fwtest.RequireRoot(b)
	timed := firewall.Key{Network: "bench", ContainerID: "timed", IfName: "eth0"}
	addrs := []netip.Prefix{netip.MustParsePrefix("10.200.0.5/16"), netip.MustParsePrefix("fd88::5/64")}
	m := New()
	nodes := make([]fwtest.NetNS, len(benchOthers))
	for j, others := range benchOthers {
		nodes[j] = fwtest.NewNetNS(b, "bmasq")
		err := nodes[j].Do(func() error {
			for i := range others {
				k := firewall.Key{Network: "bench", ContainerID: fmt.Sprintf("other%04d", i), IfName: "eth0"}
				if err := m.Ensure(k, []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 16)}); err != nil {
					return err
				}
			}
			// The skeleton exists from here on.
			if err := m.Ensure(timed, addrs); err != nil {
				return err
			}
			return m.Remove(timed)
		})
		b.Cleanup(func() {
			// The others' records (in DefaultRecordDir) go with their rules.
			if err := nodes[j].Do(func() error { return m.GC("bench", nil) }); err != nil {
				b.Error(err)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	ensure := make([]time.Duration, len(nodes))
	check := make([]time.Duration, len(nodes))
	remove := make([]time.Duration, len(nodes))
	b.ResetTimer()
	for b.Loop() {
		for j, n := range nodes {
			err := n.Do(func() error {
				t0 := time.Now()
				if err := m.Ensure(timed, addrs); err != nil {
					return err
				}
				t1 := time.Now()
				if err := m.Check(timed, addrs); err != nil {
					return err
				}
				t2 := time.Now()
				if err := m.Remove(timed); err != nil {
					return err
				}
				ensure[j] += t1.Sub(t0)
				check[j] += t2.Sub(t1)
				remove[j] += time.Since(t2)
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
	for j, others := range benchOthers {
		b.ReportMetric(perOp(ensure[j]), fmt.Sprintf("ensure-ms/others=%d", others))
		b.ReportMetric(perOp(check[j]), fmt.Sprintf("check-ms/others=%d", others))
		b.ReportMetric(perOp(remove[j]), fmt.Sprintf("remove-ms/others=%d", others))
	}
}
