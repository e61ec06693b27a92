package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
)

func nftOnly(b string) bool { return b == firewall.BackendNFTables }
func iptOnly(b string) bool { return b == firewall.BackendIPTables }

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.1.0","name":"net1","type":"portmap"`
	pm := func(s string) string { return `,"runtimeConfig":{"portMappings":[` + s + `]}` }
	for _, tc := range []struct {
		name        string
		json        string
		avail       func(string) bool
		wantBackend string
		code        uint
		field       string // the error names this
	}{
		{name: "defaults to nftables where it works", json: `{` + base + `}`, avail: nftOnly, wantBackend: "nftables"},
		{name: "iptables where nftables does not work", json: `{` + base + `}`, avail: iptOnly, wantBackend: "iptables"},
		{name: "explicit backend", json: `{` + base + `,"backend":"iptables"}`, avail: nftOnly, wantBackend: "iptables"},
		{name: "iptables conditions pick iptables", json: `{` + base + `,"conditionsV4":["-d","192.0.2.0/24"]}`, avail: nftOnly, wantBackend: "iptables"},
		{name: "nft conditions pick nftables", json: `{` + base + `,"conditionsV4":["ip daddr 192.0.2.0/24"]}`, avail: iptOnly, wantBackend: "nftables"},
		{name: "externalSetMarkChain picks iptables", json: `{` + base + `,"externalSetMarkChain":"KUBE-MARK-MASQ"}`, avail: nftOnly, wantBackend: "iptables"},
		{name: "unknown backend", json: `{` + base + `,"backend":"pf"}`, avail: nftOnly, code: conf.CodeInvalidConfig, field: "backend"},
		{name: "iptables conditions with nftables backend", json: `{` + base + `,"backend":"nftables","conditionsV6":["-d","2001:db8::/64"]}`, avail: nftOnly, code: conf.CodeInvalidConfig, field: "conditionsV6"},
		{name: "mark bit and external chain", json: `{` + base + `,"markMasqBit":13,"externalSetMarkChain":"X"}`, avail: iptOnly, code: conf.CodeInvalidConfig, field: "markMasqBit"},
		{name: "mark bit out of range", json: `{` + base + `,"markMasqBit":32}`, avail: iptOnly, code: conf.CodeInvalidConfig, field: "markMasqBit"},
		{name: "bad protocol", json: `{` + base + pm(`{"hostPort":80,"containerPort":80,"protocol":"icmp"}`) + `}`, avail: nftOnly, code: conf.CodeInvalidConfig, field: "portMappings[0].protocol"},
		{name: "host port zero", json: `{` + base + pm(`{"hostPort":0,"containerPort":80,"protocol":"tcp"}`) + `}`, avail: nftOnly, code: conf.CodeInvalidConfig, field: "portMappings[0].hostPort"},
		{name: "container port too big", json: `{` + base + pm(`{"hostPort":80,"containerPort":70000,"protocol":"tcp"}`) + `}`, avail: nftOnly, code: conf.CodeInvalidConfig, field: "portMappings[0].containerPort"},
		{name: "bad host IP", json: `{` + base + pm(`{"hostPort":80,"containerPort":80,"protocol":"tcp","hostIP":"10.0.0.300"}`) + `}`, avail: nftOnly, code: conf.CodeInvalidConfig, field: "portMappings[0].hostIP"},
		{name: "wrong JSON type", json: `{` + base + `,"snat":"yes"}`, avail: nftOnly, code: conf.CodeInvalidConfig, field: "snat"},
		{name: "network name escapes", json: `{"cniVersion":"1.1.0","name":"../x","type":"portmap"}`, avail: nftOnly, code: conf.CodeInvalidConfig, field: "name"},
		{name: "valid mappings", json: `{` + base + pm(`{"hostPort":8080,"containerPort":80,"protocol":"TCP"},{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"0.0.0.0"}`) + `}`, avail: nftOnly, wantBackend: "nftables"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseConfig([]byte(tc.json), tc.avail)
			if tc.code != 0 {
				if err == nil {
					t.Fatalf("no error, want code %d", tc.code)
				}
				if got := conf.Code(err); got != tc.code {
					t.Errorf("code %d, want %d: %v", got, tc.code, err)
				}
				if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("error %q does not name %q", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.backend != tc.wantBackend {
				t.Errorf("backend %q, want %q", n.backend, tc.wantBackend)
			}
		})
	}
}

func TestMappings(t *testing.T) {
	pod := []netip.Prefix{netip.MustParsePrefix("10.22.0.5/24"), netip.MustParsePrefix("fd22::5/64")}
	entries := []entry{
		{protocol: "tcp", hostPort: 8080, contPort: 80},                                         // both families
		{protocol: "udp", hostIP: netip.MustParseAddr("192.0.2.1"), hostPort: 53, contPort: 53}, // v4 only
		{protocol: "tcp", hostIP: netip.IPv6Unspecified(), hostPort: 443, contPort: 443},        // all v6 addresses
	}
	var got []string
	for _, m := range mappings(entries, pod) {
		got = append(got, m.String()+" subnet "+m.PodSubnet.String())
	}
	want := []string{
		"tcp/8080 (all addresses) -> 10.22.0.5:80 subnet 10.22.0.0/24",
		"udp 192.0.2.1:53 -> 10.22.0.5:53 subnet 10.22.0.0/24",
		"tcp/8080 (all addresses) -> [fd22::5]:80 subnet fd22::/64",
		"tcp/443 (all addresses) -> [fd22::5]:443 subnet fd22::/64",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mappings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
