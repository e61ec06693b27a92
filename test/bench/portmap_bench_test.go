package bench

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/portmap/iptables"
	"github.com/netloom/netloom/pkg/portmap/nftables"
	"github.com/netloom/netloom/test/harness"
)

// BenchmarkPortmap measures one pod's portmap ADD and DEL, as a runtime runs them (a plugin process
// with prevResult on stdin), with 0, 100 and 1,000 other attachments' mappings already on the node, for
// netloom's two backends and the reference portmap v1.9.1 (iptables, its default), in one run:
//
//	go test ./test/bench -run '^$' -bench Portmap -benchtime 20x
//
// Everything happens in a network namespace of its own, so the node's rules are not touched. The other
// mappings are installed in-process through the backend (the reference's with netloom's iptables
// backend, which writes the reference's chain layout).
func BenchmarkPortmap(b *testing.B) {
	harness.RequireRoot(b)
	suites := []struct {
		name    string
		backend string
		binary  func(b *testing.B) string
		fill    func() portmap.Mapper
	}{
		{"netloom-nftables", firewall.BackendNFTables, func(b *testing.B) string { return "portmap" }, func() portmap.Mapper { return nftables.New() }},
		{"netloom-iptables", firewall.BackendIPTables, func(b *testing.B) string { return "portmap" }, func() portmap.Mapper { return iptables.New() }},
		{"reference", firewall.BackendIPTables, func(b *testing.B) string {
			return filepath.Join(harness.ReferencePlugin(b, "portmap"), "portmap")
		}, func() portmap.Mapper { return iptables.New() }},
	}
	for _, existing := range []int{0, 100, 1000} {
		for _, s := range suites {
			b.Run(fmt.Sprintf("%s/existing=%d", s.name, existing), func(b *testing.B) {
				n := harness.NewNetNS(b, "bpm")
				pod := harness.NewNetNS(b, "bpp") // CNI_NETNS: skel refuses the plugin's own namespace
				bin := s.binary(b)
				err := n.Do(func() error {
					m := s.fill()
					for i := range existing {
						k := firewall.Key{Network: "bench", ContainerID: fmt.Sprintf("filler-%d", i), IfName: "eth0"}
						podIP := netip.AddrFrom4([4]byte{10, 218, byte(i >> 8), byte(i)})
						ms := []portmap.Mapping{{Protocol: portmap.TCP, HostPort: uint16(20000 + i), PodIP: podIP, PodPort: 80,
							PodSubnet: netip.MustParsePrefix("10.218.0.0/16")}}
						if err := m.Add(k, ms, portmap.Options{SNAT: true, MarkMasqBit: portmap.DefaultMarkMasqBit}); err != nil {
							return fmt.Errorf("filler %d: %w", i, err)
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				var add, del time.Duration
				pods := 0
				for i := 0; b.Loop(); i++ {
					pods++
					id := fmt.Sprintf("bench-%d", i)
					stdin := portmapConf(s.backend, 40000+i%20000)
					env := map[string]string{"CNI_CONTAINERID": id, "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
					err := n.Do(func() error {
						env["CNI_COMMAND"] = "ADD"
						t0 := time.Now()
						if out, err := harness.RunPlugin(b, bin, env, stdin); err != nil {
							return fmt.Errorf("ADD: %w: %s", err, out)
						}
						t1 := time.Now()
						env["CNI_COMMAND"] = "DEL"
						if out, err := harness.RunPlugin(b, bin, env, stdin); err != nil {
							return fmt.Errorf("DEL: %w: %s", err, out)
						}
						add += t1.Sub(t0)
						del += time.Since(t1)
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				addMs := float64(add.Microseconds()) / 1e3 / float64(pods)
				delMs := float64(del.Microseconds()) / 1e3 / float64(pods)
				b.ReportMetric(addMs, "add-ms")
				b.ReportMetric(delMs, "del-ms")
				// The report compares netloom's default backend (nftables) with the reference; the
				// iptables backend gets rows of its own.
				scenario, suite := fmt.Sprintf("portmap, %d existing mappings", existing), suiteReference
				switch s.name {
				case "netloom-nftables":
					suite = suiteNetloom
				case "netloom-iptables":
					scenario, suite = scenario+" (netloom's iptables backend)", suiteNetloom
				}
				results.record(scenario, "ADD mean", "ms", suite, addMs, false)
				results.record(scenario, "DEL mean", "ms", suite, delMs, false)
			})
		}
	}
}

// portmapConf is a chained portmap config with one TCP mapping and the prevResult of a bridge pod.
func portmapConf(backend string, hostPort int) []byte {
	out, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": "bench", "type": "portmap", "backend": backend,
		"runtimeConfig": map[string]any{"portMappings": []map[string]any{
			{"hostPort": hostPort, "containerPort": 80, "protocol": "tcp"}}},
		"prevResult": map[string]any{
			"cniVersion": "1.1.0",
			"interfaces": []map[string]any{{"name": "eth0", "sandbox": "/var/run/netns/x"}},
			"ips":        []map[string]any{{"address": "10.219.0.2/24", "interface": 0}},
		},
	})
	return out
}
