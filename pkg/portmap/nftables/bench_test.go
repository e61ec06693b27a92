package nftables

import (
	"errors"
	"fmt"
	"testing"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/portmap"
)

// populate adds others attachments, each with one or two mappings (IPv4 only, or both families).
func populate(b *testing.B, m *Mapper, others int) error {
	for i := range others {
		k := firewall.Key{Network: "bench", ContainerID: fmt.Sprintf("other%04d", i), IfName: "eth0"}
		ms := []portmap.Mapping{mapping("tcp", "", uint16(20000+i), fmt.Sprintf("10.1.%d.%d/8", i/250, i%250+1), 80)}
		if i%2 == 1 {
			ms = append(ms, mapping("udp", "", uint16(20000+i), fmt.Sprintf("fd99::%x/64", i+1), 53))
		}
		if err := m.Add(k, ms, snat); err != nil {
			return err
		}
	}
	return nil
}

// benchmarked is the attachment whose ADD and DEL are timed: two mappings, both families, snat.
var (
	benchKey = firewall.Key{Network: "bench", ContainerID: "timed", IfName: "eth0"}
	benchMap = []portmap.Mapping{
		mapping("tcp", "", 8080, "10.200.0.5/16", 80),
		mapping("tcp", "", 8080, "fd88::5/64", 80),
	}
)

func benchSizes(b *testing.B, run func(b *testing.B, m *Mapper)) {
	for _, others := range []int{0, 100, 1000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			n := newNS(b)
			m := New()
			do(b, n, func() error {
				if err := populate(b, m, others); err != nil {
					return err
				}
				// The skeleton exists from here on, as on a node that has run a pod before.
				if err := m.Add(benchKey, benchMap, snat); err != nil {
					return err
				}
				if err := m.Remove(benchKey, hostKeys(benchMap)); err != nil {
					return err
				}
				b.ResetTimer()
				run(b, m)
				return nil
			})
		})
	}
}

func must(b *testing.B, err error) {
	if err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAdd(b *testing.B) {
	benchSizes(b, func(b *testing.B, m *Mapper) {
		for b.Loop() {
			must(b, m.Add(benchKey, benchMap, snat))
			b.StopTimer()
			must(b, m.Remove(benchKey, hostKeys(benchMap)))
			b.StartTimer()
		}
	})
}

func BenchmarkRemove(b *testing.B) {
	benchSizes(b, func(b *testing.B, m *Mapper) {
		for b.Loop() {
			b.StopTimer()
			must(b, m.Add(benchKey, benchMap, snat))
			b.StartTimer()
			must(b, m.Remove(benchKey, hostKeys(benchMap)))
		}
	})
}

// BenchmarkRemoveWithoutHint is a DEL that knows nothing of the mappings: it lists the maps.
func BenchmarkRemoveWithoutHint(b *testing.B) {
	benchSizes(b, func(b *testing.B, m *Mapper) {
		for b.Loop() {
			b.StopTimer()
			must(b, m.Add(benchKey, benchMap, snat))
			b.StartTimer()
			must(b, m.Remove(benchKey, nil))
		}
	})
}

// BenchmarkReAdd is an ADD of mappings that are all there already (a retried ADD).
func BenchmarkReAdd(b *testing.B) {
	benchSizes(b, func(b *testing.B, m *Mapper) {
		must(b, m.Add(benchKey, benchMap, snat))
		for b.Loop() {
			must(b, m.Add(benchKey, benchMap, snat))
		}
	})
}

// BenchmarkRemoveWork is BenchmarkRemove without closing the socket, which after a deletion waits for
// the kernel's RCU grace period: the part of a DEL that this package's design decides.
func BenchmarkRemoveWork(b *testing.B) {
	benchSizes(b, func(b *testing.B, m *Mapper) {
		for b.Loop() {
			b.StopTimer()
			must(b, m.Add(benchKey, benchMap, snat))
			c, err := nftnl.Dial()
			must(b, err)
			b.StartTimer()
			must(b, remove(c, m, ownerOf(benchKey), hostKeys(benchMap), true))
			b.StopTimer()
			c.Close()
			b.StartTimer()
		}
	})
}

// BenchmarkAddConflict is an ADD refused because another attachment has the host port.
func BenchmarkAddConflict(b *testing.B) {
	benchSizes(b, func(b *testing.B, m *Mapper) {
		must(b, m.Add(benchKey, benchMap, snat))
		other := firewall.Key{Network: "bench", ContainerID: "late", IfName: "eth0"}
		ms := []portmap.Mapping{mapping("tcp", "", 8080, "10.200.0.6/16", 80)}
		for b.Loop() {
			var ce *portmap.ConflictError
			if err := m.Add(other, ms, snat); !errors.As(err, &ce) {
				b.Fatalf("Add = %v, want a ConflictError", err)
			}
		}
	})
}
