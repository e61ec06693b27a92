package forward

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/netloom/netloom/pkg/firewall/internal/fwtest"
	"github.com/netloom/netloom/pkg/xtables"
)

// TestRootConcurrentFirstAdds starts many pods at once on a node that has none yet, over and over on a
// fresh node: every change must find what the others made, so the forward chain's jumps and a bridge's
// isolation rules exist once. Each goroutine has its own thread and its own iptables runs or netlink
// socket, like separate plugin processes. Without the lock (Serialise), three runs of 80 rounds each
// failed, on both backends: iptables-nft doubled the jump to CNI-FORWARD (in rounds 1, 23 and 29;
// iptables-nft-restore, refused because the ruleset changed after it read it, replays its rules and
// skips a -N whose chain exists now), nftables the same-bridge rule (rounds 21, 30 and 66).
func TestRootConcurrentFirstAdds(t *testing.T) {
	fwtest.RequireRoot(t)
	const (
		rounds = 40
		pods   = 6
		bridge = "fwrace0"
	)
	type backend interface {
		Backend
		Isolator
	}
	type testCase struct {
		name string
		new  func(lock string) backend
		dump func(n fwtest.NetNS) string
		once []string // what must appear exactly once
	}
	var cases []testCase
	for _, v := range []xtables.Variant{xtables.VariantLegacy, xtables.VariantNFT} {
		c := xtables.Config{Variant: v}
		save, _ := c.Binaries(xtables.IPv4)
		cases = append(cases, testCase{
			name: "iptables-" + string(v),
			new: func(lock string) backend {
				x := NewIPTables(c, DefaultAdminChain)
				x.lockFile = lock
				return x
			},
			dump: func(n fwtest.NetNS) string { return n.Run(t, save, "-t", "filter") },
			once: []string{"-j " + PodChain + "\n", "-j " + DefaultAdminChain + "\n", "-j " + Stage1Chain + "\n",
				"-i " + bridge + " ! -o " + bridge},
		})
	}
	cases = append(cases, testCase{
		name: "nftables",
		new:  func(lock string) backend { return NFTables{LockFile: lock} },
		dump: func(n fwtest.NetNS) string { return n.Run(t, "nft", "list", "table", "inet", NFTTable) },
		once: []string{"jump " + nftStage1, "jump " + nftAdmin, "same-bridge " + bridge},
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lock := filepath.Join(t.TempDir(), "firewall.lock")
			for round := range rounds {
				n := fwtest.NewNetNS(t, "fwf")
				var wg sync.WaitGroup
				errs := make([]error, pods)
				for i := range pods {
					wg.Go(func() {
						a := []netip.Addr{netip.AddrFrom4([4]byte{10, 77, byte(round), byte(i + 2)})}
						be := c.new(lock)
						errs[i] = n.Do(func() error {
							if err := be.Open(a); err != nil {
								return err
							}
							return be.Isolate(a, bridge, PolicySameBridge)
						})
					})
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("round %d, pod %d: %v", round, i, err)
					}
				}
				d := c.dump(n)
				for _, s := range c.once {
					if got := strings.Count(d, s); got != 1 {
						t.Fatalf("round %d: %q %d times after %d concurrent first ADDs:\n%s", round, s, got, pods, d)
					}
				}
				for i := range pods {
					if a := fmt.Sprintf("10.77.%d.%d", round, i+2); !strings.Contains(d, a) {
						t.Fatalf("round %d: pod %s's rules missing:\n%s", round, a, d)
					}
				}
			}
		})
	}
}
