package inventory

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/forward"
	fwipt "github.com/netloom/netloom/pkg/firewall/iptables"
	fwnft "github.com/netloom/netloom/pkg/firewall/nftables"
	"github.com/netloom/netloom/pkg/ipam"
	pmipt "github.com/netloom/netloom/pkg/portmap/iptables"
)

func TestParseIPTables(t *testing.T) {
	k := firewall.Key{Network: "pods", ContainerID: "c1", IfName: "eth0"}
	save := strings.Join([]string{
		"*nat",
		"-A POSTROUTING -s 10.1.0.2/32 -m comment --comment " + strconv.Quote(fwipt.Comment("pods", "c1")) + " -j CNI-0123",
		"-A CNI-DN-xx -p tcp -m comment --comment " + strconv.Quote(pmipt.Comment(k)) + " -m tcp --dport 8080 -j DNAT",
		// the reference portmap's comment names no interface
		`-A CNI-DN-yy -p tcp -m comment --comment "dnat name: \"pods\" id: \"c2\"" -j DNAT`,
		"-A POSTROUTING -m comment --comment \"kubernetes\" -j KUBE",
		"COMMIT",
	}, "\n")
	got := parseIPTables(save)
	want := []owner{
		{"pods", "c1", "", RuleIPTablesMasq},
		{"pods", "c1", "eth0", RuleIPTablesPortmap},
		{"pods", "c2", "", RuleIPTablesPortmap},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseNFTables(t *testing.T) {
	k := firewall.Key{Network: "pods", ContainerID: "c1", IfName: "eth0"}
	ruleset := strings.Join([]string{
		"table inet cni_plugins_masquerade {",
		"\tchain masq_checks {",
		"\t\tip saddr 10.1.0.2 ip daddr != 10.1.0.0/24 masquerade comment " + strconv.Quote(fwnft.Comment(k)),
		"\t}",
		"}",
		"table inet netloom-portmap {",
		`	map dnat4 { elements = { 8080 : 10.1.0.3 . 80 comment "0123456789abcdef-0123456789abcdef pods/c3/net1" } }`,
		"}",
	}, "\n")
	got := parseNFTables(ruleset)
	want := []owner{{"pods", "c1", "eth0", RuleNFTablesMasq}, {"pods", "c3", "net1", RuleNFTablesPortmap}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// writeCache writes one entry of libcni's result cache as libcni's cacheAdd does.
func writeCache(t *testing.T, dir, network, id, ifName, netnsPath string, config, result map[string]any, capArgs map[string]any) {
	t.Helper()
	cfg, _ := json.Marshal(config)
	b, _ := json.Marshal(map[string]any{"kind": "cniCacheV1", "containerId": id, "config": cfg, "ifName": ifName,
		"networkName": network, "netns": netnsPath, "capabilityArgs": capArgs, "result": result})
	p := filepath.Join(dir, "results", network+"-"+id+"-"+ifName)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestListFromCacheLeasesAndRecords(t *testing.T) {
	root := t.TempDir()
	d := Dirs{CacheDir: filepath.Join(root, "cache"), LeaseDir: filepath.Join(root, "leases"),
		FirewallDir: filepath.Join(root, "fw"), BGPDir: filepath.Join(root, "bgp"), TuningDir: filepath.Join(root, "tuning"), SkipRules: true}
	private := filepath.Join(root, "private-leases")
	list := map[string]any{"cniVersion": "1.0.0", "name": "pods", "plugins": []any{
		map[string]any{"type": "bridge", "bridge": "br0", "ipam": map[string]any{"type": "host-local", "dataDir": private, "subnet": "10.1.0.0/24"}},
		map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
	}}
	result := map[string]any{"cniVersion": "1.0.0",
		"interfaces": []any{map[string]any{"name": "br0"}, map[string]any{"name": "veth1"}, map[string]any{"name": "eth0", "sandbox": "/run/netns/gone"}},
		"ips":        []any{map[string]any{"address": "10.1.0.2/24", "interface": 2}}}
	caps := map[string]any{"portMappings": []any{map[string]any{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}}}
	writeCache(t, d.CacheDir, "pods", "c1", "eth0", filepath.Join(root, "no-such-netns"), list, result, caps)

	// c1's lease in the private dataDir the cached config names; c2's in the default one, with no cache entry.
	for _, l := range []struct {
		dir, id, addr string
	}{{private, "c1", "10.1.0.2"}, {d.LeaseDir, "c2", "10.1.0.3"}} {
		s, err := ipam.OpenStore(l.dir, "pods")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Reserve(netip.MustParseAddr(l.addr), conf.Attachment{ContainerID: l.id, IfName: "eth0"}, 0); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if err := (forward.Store{Dir: d.FirewallDir}).Save(firewall.Key{Network: "pods", ContainerID: "c2", IfName: "eth0"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d.TuningDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.TuningDir, "c1_eth0.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}

	inv := List(d)
	if len(inv.Errors) != 0 {
		t.Errorf("errors: %v", inv.Errors)
	}
	if len(inv.Attachments) != 2 {
		t.Fatalf("got %d attachments, want 2: %+v", len(inv.Attachments), inv.Attachments)
	}
	c1, c2 := inv.Attachments[0], inv.Attachments[1]
	if c1.ContainerID != "c1" || c1.State != Dead || c1.HostIf != "veth1" || !slices.Equal(c1.Plugins, []string{"bridge", "portmap"}) ||
		!slices.Equal(c1.Sources, []string{SourceCache, SourceLease, SourceTuning}) ||
		len(c1.Addresses) != 1 || c1.Addresses[0] != netip.MustParsePrefix("10.1.0.2/24") ||
		len(c1.HostPorts) != 1 || c1.HostPorts[0].String() != "8080->80/tcp" {
		t.Errorf("c1: %+v", c1)
	}
	if c2.ContainerID != "c2" || c2.State != Uncached || !slices.Equal(c2.Sources, []string{SourceLease, SourceFirewall}) ||
		len(c2.Addresses) != 1 || c2.Addresses[0] != netip.MustParsePrefix("10.1.0.3/32") {
		t.Errorf("c2: %+v", c2)
	}

	var table, js bytes.Buffer
	if err := inv.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "8080->80/tcp") || !strings.Contains(table.String(), "uncached") {
		t.Errorf("table:\n%s", table.String())
	}
	if err := inv.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Inventory
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Attachments) != 2 || back.Attachments[0].State != Dead {
		t.Errorf("json %v: %s", err, js.String())
	}
}
