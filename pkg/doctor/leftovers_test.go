package doctor

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/netloom/netloom/pkg/bgp"
	"github.com/netloom/netloom/pkg/inventory"
)

func TestJudgeGone(t *testing.T) {
	list11 := &libcni.NetworkConfigList{Name: "pods", CNIVersion: "1.1.0"}
	list10 := &libcni.NetworkConfigList{Name: "pods", CNIVersion: "1.0.0"}
	lease := []netip.Prefix{netip.MustParsePrefix("10.1.0.2/32")}
	for _, tc := range []struct {
		name   string
		a      inventory.Attachment
		list   *libcni.NetworkConfigList
		status Status
		found  string
		fix    string
	}{
		{"dead with lease: DEL", inventory.Attachment{State: inventory.Dead, Why: "netns x is gone", Cached: &libcni.NetworkAttachment{},
			Sources: []string{inventory.SourceCache, inventory.SourceLease}, Addresses: lease}, list11, Fail, "leases 10.1.0.2", "DEL with the runtime's cached config"},
		{"uncached portmap rules: GC", inventory.Attachment{Network: "pods", State: inventory.Uncached, Why: "no runtime cache entry",
			Sources: []string{inventory.SourceRules}, Rules: []string{inventory.RuleNFTablesPortmap}}, list11, Fail, "nftables portmap rules", `GC of network "pods"`},
		{"uncached masquerade only: warn", inventory.Attachment{State: inventory.Uncached,
			Sources: []string{inventory.SourceRules}, Rules: []string{inventory.RuleIPTablesMasq}}, list11, Warn, "iptables masquerade rules", "GC"},
		{"no conflist", inventory.Attachment{Network: "pods", State: inventory.Uncached, Sources: []string{inventory.SourceLease}, Addresses: lease}, nil, Fail, "leases", "no conflist"},
		{"before GC existed", inventory.Attachment{State: inventory.Uncached, Sources: []string{inventory.SourceLease}, Addresses: lease}, list10, Fail, "leases", "GC needs 1.1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := judgeGone(&tc.a, tc.list)
			if f.Status != tc.status || !strings.Contains(f.Found, tc.found) || !strings.Contains(f.Fix, tc.fix) {
				t.Errorf("got %+v; want %v, found ~%q, fix ~%q", f, tc.status, tc.found, tc.fix)
			}
		})
	}
}

func TestJudgeSessions(t *testing.T) {
	up := bgp.Peer{Address: "10.0.0.1", ASN: 65000, State: "established", Established: true}
	down := bgp.Peer{Address: "10.0.0.2", ASN: 65000, State: "active"}
	if fs := judgeSessions("s", []bgp.Peer{up, down}); len(fs) != 2 || fs[0].Status != OK || fs[1].Status != Warn {
		t.Errorf("one down: %+v", fs)
	}
	if fs := judgeSessions("s", []bgp.Peer{down}); len(fs) != 1 || fs[0].Status != Fail {
		t.Errorf("all down: %+v", fs)
	}
	if fs := judgeSessions("s", nil); len(fs) != 1 || fs[0].Status != OK {
		t.Errorf("none: %+v", fs)
	}
}

func TestMetric(t *testing.T) {
	text := "# HELP netloomd_cluster_apiserver_answers x\nnetloomd_cluster_apiserver_answers_total 5\nnetloomd_cluster_apiserver_answers 0\n"
	if v, ok := metric(strings.NewReader(text), "netloomd_cluster_apiserver_answers"); !ok || v != "0" {
		t.Errorf("got %q %v", v, ok)
	}
}

func TestNetloomdNotRunning(t *testing.T) {
	c := Netloomd(t.TempDir()+"/none.sock", "http://127.0.0.1:1")
	fs := c.Run(&Node{})
	if len(fs) != 1 || fs[0].Status != OK || !strings.Contains(fs[0].Found, "not running") {
		t.Errorf("%+v", fs)
	}
}
