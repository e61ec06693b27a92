package ipmasq

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/internal/fwtest"
)

// TestConcurrentPlugins runs many Ensures, then many Removes, at once in a namespace that starts without
// any table, as a runtime starting many pods does: each goroutine has its own thread and its own
// iptables runs or netlink socket, like separate plugin processes.
func TestConcurrentPlugins(t *testing.T) {
	fwtest.RequireRoot(t)
	const pods = 16
	key := func(i int) firewall.Key {
		return firewall.Key{Network: "racenet", ContainerID: fmt.Sprintf("pod%d", i), IfName: "eth0"}
	}
	addrs := func(i int) string { return fmt.Sprintf("10.55.0.%d/24", i+2) }
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			n := fwtest.NewNetNS(t, "fwr")
			all := func(f func(i int) error) {
				t.Helper()
				var wg sync.WaitGroup
				errs := make([]error, pods)
				for i := range pods {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs[i] = n.Do(func() error { return f(i) })
					}()
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("pod %d: %v", i, err)
					}
				}
			}
			m := b.new(t)
			all(func(i int) error { return m.Ensure(key(i), prefixes(addrs(i))) })
			all(func(i int) error { return m.Check(key(i), prefixes(addrs(i))) })
			d := b.dump(t, n)
			if b.name == "nftables" {
				if got := strings.Count(d, "goto masq_checks"); got != 1 {
					t.Errorf("postrouting has %d jumps to masq_checks, want 1:\n%s", got, d)
				}
			}
			for i := range pods {
				if got := strings.Count(d, b.marker(key(i))); got != b.perFamily {
					t.Errorf("pod %d: %d markers, want %d", i, got, b.perFamily)
				}
			}
			all(func(i int) error { return m.Remove(key(i)) })
			if d := b.dump(t, n); strings.Contains(d, "CNI-") || strings.Contains(d, "masquerade comment") {
				t.Errorf("rules left after concurrent Removes:\n%s", d)
			}
		})
	}
}
