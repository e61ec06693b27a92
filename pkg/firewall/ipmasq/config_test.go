package ipmasq

import (
	"net"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
)

func TestBackend(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		key  *string
		want string
		code uint
	}{
		{key: nil, want: ""},
		{key: s("iptables"), want: "iptables"},
		{key: s("nftables"), want: "nftables"},
		{key: s(""), code: conf.CodeInvalidConfig},
		{key: s("pf"), code: conf.CodeInvalidConfig},
	} {
		got, err := Backend(tc.key)
		if conf.Code(err) != tc.code || got != tc.want {
			t.Errorf("Backend(%v) = %q, %v; want %q, code %d", tc.key, got, err, tc.want, tc.code)
		}
		if err != nil && !strings.Contains(err.Error(), "ipMasqBackend") {
			t.Errorf("error %q does not name ipMasqBackend", err)
		}
	}
}

func TestResultPrefixes(t *testing.T) {
	ip, n, _ := net.ParseCIDR("10.1.1.5/24")
	r := &current.Result{IPs: []*current.IPConfig{{Address: net.IPNet{IP: ip, Mask: n.Mask}}}}
	if got := ResultPrefixes(r); len(got) != 1 || got[0].String() != "10.1.1.5/24" {
		t.Errorf("ResultPrefixes = %v, want [10.1.1.5/24]", got)
	}
}
