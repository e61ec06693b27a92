package ipmasq

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/internal/fwtest"
)

// TestTiming measures one pod's Ensure and Remove per backend, and the reference's setup and teardown
// in the same namespace, with 20 other pods' rules in place. It logs figures and asserts nothing about
// them; run with NETLOOM_TIMING=1 -v to read them.
func TestTiming(t *testing.T) {
	fwtest.RequireRoot(t)
	// A measurement, not a check: opt in, so the test suite does not spend seconds on it.
	if os.Getenv("NETLOOM_TIMING") == "" {
		t.Skip("measurement only; run with NETLOOM_TIMING=1 -v to print figures")
	}
	const others, rounds = 20, 20
	addrs := func(i int) []netip.Prefix {
		return prefixes(fmt.Sprintf("10.66.%d.%d/16", i/200, i%200+2))
	}
	key := func(i int) firewall.Key {
		return firewall.Key{Network: "timenet", ContainerID: fmt.Sprintf("pod%d", i), IfName: "eth0"}
	}
	for _, b := range backends {
		n := fwtest.NewNetNS(t, "fwt")
		m := b.new(t)
		do(t, n, func() error {
			for i := range others {
				if err := m.Ensure(key(i), addrs(i)); err != nil {
					return err
				}
			}
			return nil
		})
		type step struct {
			name string
			f    func(i int) error
		}
		swept, err := New(b.name)
		if err != nil {
			t.Fatal(err)
		}
		steps := []step{
			{"netloom Ensure", func(i int) error { return m.Ensure(key(i), addrs(i)) }},
			{"netloom Check", func(i int) error { return m.Check(key(i), addrs(i)) }},
			{"netloom Remove", func(i int) error { return m.Remove(key(i)) }},
			{"netloom Ensure again", func(i int) error { return m.Ensure(key(i), addrs(i)) }},
			{"ipmasq.New Remove (both backends)", func(i int) error { return swept.Remove(key(i)) }},
			{"reference Setup", func(i int) error { return refSetup(b.name, key(i), addrs(i)) }},
			{"reference Teardown (both backends)", func(i int) error { return refTeardown(key(i), addrs(i)) }},
		}
		took := map[string]time.Duration{}
		for _, s := range steps {
			do(t, n, func() error {
				start := time.Now()
				for r := range rounds {
					if err := s.f(others + r); err != nil {
						return fmt.Errorf("%s: %w", s.name, err)
					}
				}
				took[s.name] = time.Since(start) / rounds
				return nil
			})
		}
		for _, s := range steps {
			t.Logf("%s: %-36s %7.2f ms/op", b.name, s.name, float64(took[s.name].Microseconds())/1000)
		}
		t.Logf("%s: reference Setup / netloom Ensure = %.1fx; reference Teardown / netloom swept Remove = %.1fx",
			b.name, float64(took["reference Setup"])/float64(took["netloom Ensure"]),
			float64(took["reference Teardown (both backends)"])/float64(took["ipmasq.New Remove (both backends)"]))
	}
}
