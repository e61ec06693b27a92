package ipmasq

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/xtables"
)

func TestNewChoosesBackend(t *testing.T) {
	for _, tc := range []struct{ backend, want string }{
		{firewall.BackendIPTables, "*iptables.Masq"},
		{firewall.BackendNFTables, "*nftables.Masq"},
	} {
		m, err := New(tc.backend)
		if err != nil {
			t.Fatalf("New(%q): %v", tc.backend, err)
		}
		if got := fmt.Sprintf("%T", m.(*both).primary); got != tc.want {
			t.Errorf("New(%q) uses %s, want %s", tc.backend, got, tc.want)
		}
		if n := len(m.(*both).cleaners); n != 2 {
			t.Errorf("New(%q) sweeps %d backends on Remove and GC, want 2", tc.backend, n)
		}
	}
	m, err := New("")
	if err != nil || m.(*both).primary != nil {
		t.Errorf(`New(""): %v; the default must be probed only when Ensure or Check needs it`, err)
	}
	for _, bad := range []string{"ebpf", "IPTABLES", " iptables"} {
		if _, err := New(bad); err == nil || !strings.Contains(err.Error(), `want "iptables" or "nftables"`) {
			t.Errorf("New(%q): %v", bad, err)
		}
	}
}

// fakeMasq is a backend whose Ensure fails with err, counting its calls.
type fakeMasq struct {
	name  string
	err   error
	calls int
}

func (f *fakeMasq) Ensure(firewall.Key, []netip.Prefix) error { f.calls++; return f.err }
func (f *fakeMasq) Check(firewall.Key, []netip.Prefix) error  { f.calls++; return f.err }
func (f *fakeMasq) Remove(firewall.Key) error                 { return nil }
func (f *fakeMasq) GC(string, map[conf.Attachment]bool) error { return nil }

// The default backend is iptables unless only nftables works, as the reference chooses, but the probe
// that tells whether iptables works runs only when iptables failed.
func TestDefaultBackendProbesOnlyOnFailure(t *testing.T) {
	refused := errors.New("iptables-restore: refused")
	for _, tc := range []struct {
		name           string
		iptErr         error
		iptWorks, nftW bool
		want           string // backend used
		wantErr        error
		wantProbes     int
	}{
		{name: "iptables does the job", want: "ipt", wantProbes: 0},
		{name: "iptables refuses but works", iptErr: refused, iptWorks: true, nftW: true, want: "ipt", wantErr: refused, wantProbes: 1},
		{name: "only nftables works", iptErr: exec.ErrNotFound, nftW: true, want: "nft", wantProbes: 1},
		{name: "neither works", iptErr: exec.ErrNotFound, want: "ipt", wantErr: exec.ErrNotFound, wantProbes: 1},
		{name: "xtables lock held", iptErr: xtables.LockTimeout("iptables-restore", time.Second), nftW: true, want: "ipt", wantErr: errLock, wantProbes: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ipt, nft := &fakeMasq{name: "ipt", err: tc.iptErr}, &fakeMasq{name: "nft"}
			probes := 0
			b := &both{fallback: fallback{
				iptables:      func() firewall.Masquerader { return ipt },
				nftables:      func() firewall.Masquerader { return nft },
				iptablesWorks: func() bool { probes++; return tc.iptWorks },
				nftablesWorks: func() bool { return tc.nftW },
			}}
			for range 2 { // the second call uses the backend the first chose, without probing
				err := b.Ensure(firewall.Key{}, nil)
				switch {
				case tc.wantErr == errLock:
					if !xtables.IsLockTimeout(err) {
						t.Errorf("Ensure: %v, want the lock timeout", err)
					}
				case !errors.Is(err, tc.wantErr):
					t.Errorf("Ensure: %v, want %v", err, tc.wantErr)
				}
			}
			if got := b.primary.(*fakeMasq).name; got != tc.want {
				t.Errorf("chose %s, want %s", got, tc.want)
			}
			if probes != tc.wantProbes {
				t.Errorf("%d probes, want %d", probes, tc.wantProbes)
			}
			if err := b.Check(firewall.Key{}, nil); tc.want == "nft" && (err != nil || nft.calls != 3) {
				t.Errorf("Check after nftables was chosen: %v, nftables called %d times", err, nft.calls)
			}
			if probes != tc.wantProbes {
				t.Errorf("Check probed again: %d probes", probes)
			}
		})
	}
}

// errLock stands for any lock timeout in the table above.
var errLock = errors.New("lock timeout")
