package nftables

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/internal/fwtest"
)

// BenchmarkEnsureRemove times one attachment's masquerade ADD and DEL (Ensure, then Remove, both
// families) in a fresh namespace whose table already holds others attachments' rules, as on a node
// that has run pods before:
//
//	go test ./pkg/firewall/nftables -run '^$' -bench EnsureRemove -benchtime 200x
func BenchmarkEnsureRemove(b *testing.B) {
	fwtest.RequireRoot(b)
	timed := firewall.Key{Network: "bench", ContainerID: "timed", IfName: "eth0"}
	addrs := []netip.Prefix{netip.MustParsePrefix("10.200.0.5/16"), netip.MustParsePrefix("fd88::5/64")}
	for _, others := range []int{0, 100} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			n := fwtest.NewNetNS(b, "bmasq")
			m := New()
			err := n.Do(func() error {
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
				if err := m.Remove(timed); err != nil {
					return err
				}
				var ensure, remove time.Duration
				b.ResetTimer()
				for b.Loop() {
					t0 := time.Now()
					if err := m.Ensure(timed, addrs); err != nil {
						return err
					}
					t1 := time.Now()
					if err := m.Remove(timed); err != nil {
						return err
					}
					ensure += t1.Sub(t0)
					remove += time.Since(t1)
				}
				b.ReportMetric(float64(ensure.Microseconds())/1e3/float64(b.N), "ensure-ms")
				b.ReportMetric(float64(remove.Microseconds())/1e3/float64(b.N), "remove-ms")
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
