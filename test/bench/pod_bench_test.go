// Package bench measures netloom against the reference plugins in the same run. Run as root:
//
//	go test ./test/bench -run '^$' -bench . -benchtime 50x
//
// Each benchmark reports add-ms and del-ms (mean per pod) besides ns/op (one ADD plus one DEL).
package bench

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/netloom/netloom/test/harness"
)

// podConflist is a typical node's pod network: bridge as default gateway with masquerading, host-local.
func podConflist(network, bridge, dataDir string) []byte {
	out, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0",
		"name":       network,
		"plugins": []any{map[string]any{
			"type": "bridge", "bridge": bridge, "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
			"ipam": map[string]any{"type": "host-local", "dataDir": dataDir,
				"ranges": [][]map[string]string{{{"subnet": "10.214.0.0/16"}}}},
		}},
	})
	return out
}

func BenchmarkPodAddDel(b *testing.B) {
	harness.RequireRoot(b)
	suites := []struct {
		name string
		rt   func(b *testing.B) *harness.Runtime
	}{
		{"netloom", func(b *testing.B) *harness.Runtime { return harness.NewRuntime(b) }},
		{"reference", func(b *testing.B) *harness.Runtime {
			return harness.NewRuntimeWithPath(b, harness.ReferencePlugin(b, "bridge"), harness.ReferencePlugin(b, "host-local"))
		}},
	}
	for _, s := range suites {
		b.Run(s.name, func(b *testing.B) {
			rt := s.rt(b)
			bridge := harness.Unique("nlbb")
			harness.RemoveLinkOnCleanup(b, bridge)
			list := podConflist(harness.Unique("bench"), bridge, b.TempDir())
			var add, del time.Duration
			var pods int
			for i := 0; b.Loop(); i++ {
				pods++
				b.StopTimer()
				n := harness.NewNetNS(b, "b")
				id := fmt.Sprintf("bench-%d", i)
				b.StartTimer()
				t0 := time.Now()
				if _, err := rt.Add(b, list, id, n.Path, "eth0", nil); err != nil {
					b.Fatalf("ADD: %v", err)
				}
				t1 := time.Now()
				if err := rt.Del(b, list, id, n.Path, "eth0", nil); err != nil {
					b.Fatalf("DEL: %v", err)
				}
				t2 := time.Now()
				add += t1.Sub(t0)
				del += t2.Sub(t1)
				b.StopTimer()
				n.Delete(b)
				b.StartTimer()
			}
			b.ReportMetric(float64(add.Microseconds())/1e3/float64(pods), "add-ms")
			b.ReportMetric(float64(del.Microseconds())/1e3/float64(pods), "del-ms")
		})
	}
}
