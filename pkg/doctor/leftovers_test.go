package doctor

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/inventory"
	"github.com/netloom/netloom/pkg/ipam"
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
		{"not a checked network", inventory.Attachment{Network: "pods", State: inventory.Uncached, Sources: []string{inventory.SourceLease}, Addresses: lease}, nil, Warn, "no checked conflist names its network", "put its conflist back"},
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

func TestLeftoversWithoutCache(t *testing.T) {
	root := t.TempDir()
	dirs := inventory.Dirs{LeaseDir: root + "/leases", FirewallDir: root + "/fw", BGPDir: root + "/bgp", TuningDir: root + "/tuning", SkipRules: true}
	s, err := ipam.OpenStore(dirs.LeaseDir, "pods")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(netip.MustParseAddr("10.1.0.2"), conf.Attachment{ContainerID: "c1", IfName: "eth0"}, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	age(t, dirs.LeaseDir+"/pods/10.1.0.2", 10*time.Minute) // an old leak, not an ADD in progress
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.1.0","name":"pods","plugins":[{"type":"bridge"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Networks: []Network{{File: "pods.conflist", List: list}}, CacheDir: root + "/no-cache", BinDirs: []string{root}}
	c := Leftovers(dirs)
	fs := c.Run(n)
	if len(fs) != 1 || fs[0].Status != Unknown || !strings.Contains(fs[0].Found, "no runtime cache") {
		t.Errorf("findings: %+v", fs)
	}
	did, err := c.Fix(n)
	if err == nil || len(did) != 0 || !strings.Contains(err.Error(), "no GC of pods") {
		t.Errorf("Fix did %v, err %v; want a refusal", did, err)
	}
}

// age sets path's modification time d in the past.
func age(t *testing.T, path string, d time.Duration) {
	t.Helper()
	then := time.Now().Add(-d)
	if err := os.Chtimes(path, then, then); err != nil {
		t.Fatal(err)
	}
}

// An uncached attachment leased moments ago may be an ADD whose result the runtime has not cached
// yet: reported as a warning, and Fix leaves it (and its network) alone.
func TestLeftoversSparesAddInProgress(t *testing.T) {
	root := t.TempDir()
	dirs := inventory.Dirs{LeaseDir: root + "/leases", FirewallDir: root + "/fw", BGPDir: root + "/bgp", TuningDir: root + "/tuning", SkipRules: true}
	if err := os.MkdirAll(root+"/cache/results", 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := ipam.OpenStore(dirs.LeaseDir, "pods")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(netip.MustParseAddr("10.1.0.2"), conf.Attachment{ContainerID: "c1", IfName: "eth0"}, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.1.0","name":"pods","plugins":[{"type":"bridge"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Networks: []Network{{File: "pods.conflist", List: list}}, CacheDir: root + "/cache", BinDirs: []string{root}}
	c := Leftovers(dirs)
	fs := c.Run(n)
	if len(fs) != 1 || fs[0].Status != Warn || !strings.Contains(fs[0].Found, "an ADD may be in progress") {
		t.Errorf("findings: %+v", fs)
	}
	if did, err := c.Fix(n); err != nil || len(did) != 0 {
		t.Errorf("Fix did %v, err %v; want nothing", did, err)
	}
	age(t, dirs.LeaseDir+"/pods/10.1.0.2", 10*time.Minute)
	if fs := c.Run(n); len(fs) != 1 || fs[0].Status != Fail {
		t.Errorf("an old leak: %+v", fs)
	}
}

// A leak of a network that no checked conflist names is reported as a warning and left to its own
// conflist's GC: Fix neither touches it nor fails on it.
func TestLeftoversOtherNetwork(t *testing.T) {
	root := t.TempDir()
	dirs := inventory.Dirs{LeaseDir: root + "/leases", FirewallDir: root + "/fw", BGPDir: root + "/bgp", TuningDir: root + "/tuning", SkipRules: true}
	if err := os.MkdirAll(root+"/cache/results", 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := ipam.OpenStore(dirs.LeaseDir, "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(netip.MustParseAddr("10.9.0.2"), conf.Attachment{ContainerID: "c9", IfName: "eth0"}, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	age(t, dirs.LeaseDir+"/other/10.9.0.2", 10*time.Minute)
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.1.0","name":"pods","plugins":[{"type":"bridge"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Networks: []Network{{File: "pods.conflist", List: list}}, CacheDir: root + "/cache", BinDirs: []string{root}}
	c := Leftovers(dirs)
	if fs := c.Run(n); len(fs) != 1 || fs[0].Status != Warn || !strings.Contains(fs[0].Subject, "other/c9") {
		t.Errorf("findings: %+v", fs)
	}
	if did, err := c.Fix(n); err != nil || len(did) != 0 {
		t.Errorf("Fix did %v, err %v; want nothing", did, err)
	}
}
