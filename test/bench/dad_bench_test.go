package bench

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/route"
	"github.com/netloom/netloom/test/harness"
)

// BenchmarkMacvlanIPv6Add measures what IPv6 duplicate address detection costs a macvlan ADD: pods
// with one IPv6 address each (host-local, which also puts an IPv6 gateway in the result), added one
// after the other, then deleted; ADD and DEL percentiles for netloom and the reference. netloom runs
// DAD optimistically and watches 20 ms for a duplicate's answer; the reference waits until DAD ends
// (the result has an IPv6 gateway). To compare netloom builds (DAD off before, optimistic after), run
// it with NETLOOM_BIN pointing at each build. Not part of `make bench`: the reference pods take 1-2 s
// each.
//
//	NETLOOM_BENCH_DAD_PODS  pods per suite (default 20)
func BenchmarkMacvlanIPv6Add(b *testing.B) {
	harness.RequireRoot(b)
	pods := envInt(b, "NETLOOM_BENCH_DAD_PODS", 20)
	const scenario = "macvlan+host-local IPv6"
	for _, s := range benchSuites("macvlan", "host-local") {
		b.Run(s.name, func(b *testing.B) {
			rt := s.runtime(b)
			var adds, dels []time.Duration
			for b.Loop() {
				a, d := macvlanIPv6Run(b, rt, pods)
				adds, dels = append(adds, a...), append(dels, d...)
			}
			for _, p := range []struct {
				name string
				p    float64
			}{{"p50", 50}, {"p90", 90}} {
				results.record(scenario, "seq ADD "+p.name, "ms", s.name, ms(percentile(adds, p.p)), false)
				results.record(scenario, "seq DEL "+p.name, "ms", s.name, ms(percentile(dels, p.p)), false)
			}
			b.ReportMetric(ms(percentile(adds, 50)), "add-p50-ms")
		})
	}
}

// macvlanIPv6Run adds n pods on a macvlan over a veth in a node namespace of its own, then deletes
// them, and returns each call's time.
func macvlanIPv6Run(b *testing.B, rt *harness.Runtime, n int) (adds, dels []time.Duration) {
	node := harness.NewNetNS(b, "dadn")
	defer node.Delete(b)
	master, peer := harness.Unique("nldm"), harness.Unique("nldp")
	node.Run(b, "ip", "link", "add", master, "type", "veth", "peer", "name", peer)
	node.Run(b, "ip", "link", "set", master, "up")
	node.Run(b, "ip", "link", "set", peer, "up")
	list, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": harness.Unique("nldad"), "plugins": []any{
		map[string]any{"type": "macvlan", "master": master, "mode": "bridge", "ipam": map[string]any{
			"type": "host-local", "dataDir": b.TempDir(),
			"ranges": [][]map[string]string{{{"subnet": "fd00:dad:b::/64"}}}}},
	}})
	ns := make([]harness.NetNS, n)
	for i := range ns {
		ns[i] = harness.NewNetNS(b, "dadp")
	}
	defer func() {
		for _, p := range ns {
			p.Delete(b)
		}
	}()
	err := node.Do(func() error {
		for i, p := range ns {
			t0 := time.Now()
			if _, err := rt.Add(b, list, fmt.Sprintf("dad-%d", i), p.Path, "eth0", nil); err != nil {
				return fmt.Errorf("ADD %d: %w", i, err)
			}
			adds = append(adds, time.Since(t0))
		}
		for i, p := range ns {
			t0 := time.Now()
			if err := rt.Del(b, list, fmt.Sprintf("dad-%d", i), p.Path, "eth0", nil); err != nil {
				return fmt.Errorf("DEL %d: %w", i, err)
			}
			dels = append(dels, time.Since(t0))
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return adds, dels
}

// BenchmarkIPv6ConfigureDAD measures the step that changed, in process and without the exec and IPAM
// around it: ipcfg.Apply of one IPv6 address and a default route on a fresh veth in a namespace of its
// own, with DAD off (netloom's stacked links before) and optimistic (now), alternated in one run; and
// optimistic without the watch for a duplicate's answer, to tell the watch from the rest.
func BenchmarkIPv6ConfigureDAD(b *testing.B) {
	harness.RequireRoot(b)
	cfg := ipcfg.Config{
		Addrs:  []netip.Prefix{netip.MustParsePrefix("fd00:dad:c::10/64")},
		GW6:    netip.MustParseAddr("fd00:dad:c::1"),
		Routes: []route.Route{{Dst: netip.MustParsePrefix("::/0"), GW: netip.MustParseAddr("fd00:dad:c::1")}},
	}
	modes := []struct {
		name string
		o    ipcfg.Options
	}{
		{"dad-off", ipcfg.Options{}},
		{"optimistic", ipcfg.Options{OptimisticDAD: true}},
		// Without the watch for a duplicate's answer: what the rest of the optimistic setup costs.
		{"opt-nowatch", ipcfg.Options{OptimisticDAD: true, DADAnswerWait: time.Nanosecond}},
	}
	samples := map[string][]time.Duration{}
	for b.Loop() {
		for _, m := range modes {
			b.StopTimer()
			n := harness.NewNetNS(b, "dadc")
			n.Run(b, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
			n.Run(b, "ip", "link", "set", "peer0", "up")
			b.StartTimer()
			var took time.Duration
			err := n.Do(func() error {
				t0 := time.Now()
				err := ipcfg.Apply("eth0", cfg, m.o)
				took = time.Since(t0)
				return err
			})
			b.StopTimer()
			if err != nil {
				b.Fatalf("%s: %v", m.name, err)
			}
			samples[m.name] = append(samples[m.name], took)
			n.Delete(b)
			b.StartTimer()
		}
	}
	for _, m := range modes {
		p50 := ms(percentile(samples[m.name], 50))
		fmt.Printf("ipcfg.Apply IPv6 %-10s p50 %.2f ms  p90 %.2f ms  (%d samples)\n", m.name, p50, ms(percentile(samples[m.name], 90)), len(samples[m.name]))
		b.ReportMetric(p50, m.name+"-p50-ms")
	}
}
