package ipmasq

import (
	"fmt"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/firewall"
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
