package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex, true)
		f.Add(ex, false)
	}
	const base = `"cniVersion":"1.1.0","name":"net1","type":"portmap"`
	const prev = `,"prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/run/netns/p"}],` +
		`"ips":[{"address":"10.22.0.5/24","interface":1},{"address":"fd00::5/64","interface":1},{"address":"10.22.0.1/24","interface":0}]}`
	for _, s := range []string{
		`{` + base + `,"conditionsV4":["-d","192.0.2.0/24"]}`,
		`{` + base + `,"conditionsV4":["ip daddr 192.0.2.0/24"]}`,
		`{` + base + `,"backend":"nftables","conditionsV6":["-d","2001:db8::/64"]}`,
		`{` + base + `,"markMasqBit":13,"externalSetMarkChain":"X"}`,
		`{` + base + `,"snat":false,"masqAll":true,"externalSetMarkChain":"KUBE-MARK-MASQ"}`,
		`{` + base + prev + `,"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"TCP"},` +
			`{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"0.0.0.0"},{"hostPort":53,"containerPort":53,"protocol":"sctp","hostIP":"::"},` +
			`{"hostPort":443,"containerPort":443,"hostIP":"::ffff:192.0.2.1"}]}}`,
		`{` + base + `,"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"tcp","hostIP":"fe80::1%eth0"}]}}`,
		`{` + base + `,"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24","interface":7}]}}`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, stdin []byte, nftAvailable bool) {
		n, err := parseConfig(stdin, func(b string) bool { return nftAvailable && b == firewall.BackendNFTables })
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if err := conf.ValidateFileComponent("name", n.Name); err != nil {
			t.Fatalf("accepted name %q: %v", n.Name, err)
		}
		if n.backend != firewall.BackendIPTables && n.backend != firewall.BackendNFTables {
			t.Fatalf("backend %q", n.backend)
		}
		if n.opts.MarkMasqBit < 0 || n.opts.MarkMasqBit > maxMarkBit || (n.MarkMasqBit != nil && n.ExternalSetMarkChain != nil) {
			t.Fatalf("mark bit %d, external chain %v", n.opts.MarkMasqBit, n.ExternalSetMarkChain)
		}
		if n.ExternalSetMarkChain != nil && n.backend != firewall.BackendIPTables {
			t.Fatalf("externalSetMarkChain with backend %s", n.backend)
		}
		if len(n.entries) != len(n.RuntimeConfig.PortMaps) {
			t.Fatalf("%d entries of %d mappings", len(n.entries), len(n.RuntimeConfig.PortMaps))
		}
		for i, e := range n.entries {
			switch e.protocol {
			case portmap.TCP, portmap.UDP, portmap.SCTP:
			default:
				t.Fatalf("entry %d: protocol %q", i, e.protocol)
			}
			if e.hostPort == 0 || e.contPort == 0 || (e.hostIP.IsValid() && (e.hostIP.Zone() != "" || e.hostIP.Is4In6())) {
				t.Fatalf("entry %d: %+v", i, e)
			}
		}
		if n.prev == nil {
			return
		}
		for _, ifName := range []string{"eth0", "net1"} {
			pod := podAddrs(n.prev, ifName)
			if len(pod) > 2 || (len(pod) == 2 && pod[0].Addr().Is4() == pod[1].Addr().Is4()) {
				t.Fatalf("pod addresses %v: want at most one per family", pod)
			}
			for _, m := range mappings(n.entries, pod) {
				if !m.PodSubnet.Contains(m.PodIP) || m.PodSubnet != m.PodSubnet.Masked() {
					t.Fatalf("mapping %s: pod subnet %s", m, m.PodSubnet)
				}
				if m.HostIP.IsValid() && (m.HostIP.Is4() != m.PodIP.Is4() || m.HostIP.IsUnspecified()) {
					t.Fatalf("mapping %s: host address %s for pod %s", m, m.HostIP, m.PodIP)
				}
			}
		}
		for _, k := range hostKeys(n.entries) {
			if k.HostIP.IsValid() && k.HostIP.IsUnspecified() {
				t.Fatalf("host key %s keeps an unspecified address", k)
			}
		}
	})
}
