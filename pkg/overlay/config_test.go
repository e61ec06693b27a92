package overlay

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
)

// cfg is a minimal valid configuration of plugin typ with extra keys appended (each extra starts with a
// comma).
func cfg(typ, podCIDR, extra string) string {
	s := `{"cniVersion":"1.0.0","name":"ov","type":"` + typ + `","ipam":{"type":"host-local"}`
	if podCIDR != "" {
		s += `,"podCIDR":"` + podCIDR + `"`
	}
	return s + extra + `}`
}

func vx(extra string) string   { return cfg("vxlan-overlay", "10.244.1.0/24", extra) }
func ipip(extra string) string { return cfg("ipip-overlay", "10.244.1.0/24", extra) }

func TestParse(t *testing.T) {
	const cluster = `,"clusterCIDR":"10.244.0.0/16"`
	for _, tc := range []struct {
		name  string
		kind  Kind
		json  string
		code  uint   // 0: valid
		field string // must appear in the error message
		check func(*testing.T, *NetConf)
	}{
		// Valid configurations and defaults.
		{name: "vxlan defaults", kind: VXLAN, json: vx(""), check: func(t *testing.T, n *NetConf) {
			if n.Device != "nlvx.1" || n.Port != 4789 || n.vni != 1 || n.crossSubnet || n.vtepMAC != nil {
				t.Errorf("defaults: device %q port %d vni %d crossSubnet %v vtepMAC %v", n.Device, n.Port, n.vni, n.crossSubnet, n.vtepMAC)
			}
			if n.podCIDR != netip.MustParsePrefix("10.244.1.0/24") || n.clusterCIDR.IsValid() || n.nodeIP.IsValid() {
				t.Errorf("podCIDR %s clusterCIDR %s nodeIP %s", n.podCIDR, n.clusterCIDR, n.nodeIP)
			}
			if n.kind != VXLAN || len(n.peers) != 0 {
				t.Errorf("kind %v peers %v", n.kind, n.peers)
			}
		}},
		{name: "ipip defaults", kind: IPIP, json: ipip(""), check: func(t *testing.T, n *NetConf) {
			if n.Device != "nlipip" || n.Mode != ModeAlways || n.crossSubnet || n.Port != 0 || n.vni != 0 {
				t.Errorf("defaults: device %q mode %q crossSubnet %v port %d vni %d", n.Device, n.Mode, n.crossSubnet, n.Port, n.vni)
			}
		}},
		{name: "vxlan device follows vni", kind: VXLAN, json: vx(`,"vni":42`), check: func(t *testing.T, n *NetConf) {
			if n.Device != "nlvx.42" || n.vni != 42 {
				t.Errorf("device %q vni %d", n.Device, n.vni)
			}
		}},
		{name: "vni 0 ok", kind: VXLAN, json: vx(`,"vni":0`), check: func(t *testing.T, n *NetConf) {
			if n.vni != 0 || n.Device != "nlvx.0" {
				t.Errorf("vni %d device %q", n.vni, n.Device)
			}
		}},
		{name: "vni max ok", kind: VXLAN, json: vx(`,"vni":16777215`), check: func(t *testing.T, n *NetConf) {
			if n.vni != 16777215 || n.Device != "nlvx.16777215" {
				t.Errorf("vni %d device %q", n.vni, n.Device)
			}
		}},
		{name: "explicit device", kind: VXLAN, json: vx(`,"device":"vx-a.b_c"`), check: func(t *testing.T, n *NetConf) {
			if n.Device != "vx-a.b_c" {
				t.Errorf("device %q", n.Device)
			}
		}},
		{name: "port 0 defaulted", kind: VXLAN, json: vx(`,"port":0`), check: func(t *testing.T, n *NetConf) {
			if n.Port != 4789 {
				t.Errorf("port %d", n.Port)
			}
		}},
		{name: "port 8472", kind: VXLAN, json: vx(`,"port":8472`), check: func(t *testing.T, n *NetConf) {
			if n.Port != 8472 {
				t.Errorf("port %d", n.Port)
			}
		}},
		{name: "vtepMAC", kind: VXLAN, json: vx(`,"vtepMAC":"0A:00:00:00:00:01"`), check: func(t *testing.T, n *NetConf) {
			if n.vtepMAC.String() != "0a:00:00:00:00:01" {
				t.Errorf("vtepMAC %s", n.vtepMAC)
			}
		}},
		{name: "directRouting", kind: VXLAN, json: vx(`,"directRouting":true`), check: func(t *testing.T, n *NetConf) {
			if !n.crossSubnet {
				t.Error("directRouting did not set crossSubnet")
			}
		}},
		{name: "mode CrossSubnet case-insensitive", kind: IPIP, json: ipip(`,"mode":"CrossSubnet"`), check: func(t *testing.T, n *NetConf) {
			if n.Mode != ModeCrossSubnet || !n.crossSubnet {
				t.Errorf("mode %q crossSubnet %v", n.Mode, n.crossSubnet)
			}
		}},
		{name: "mode crosssubnet", kind: IPIP, json: ipip(`,"mode":"crosssubnet"`), check: func(t *testing.T, n *NetConf) {
			if n.Mode != ModeCrossSubnet || !n.crossSubnet {
				t.Errorf("mode %q crossSubnet %v", n.Mode, n.crossSubnet)
			}
		}},
		{name: "mode ALWAYS", kind: IPIP, json: ipip(`,"mode":"ALWAYS"`), check: func(t *testing.T, n *NetConf) {
			if n.Mode != ModeAlways || n.crossSubnet {
				t.Errorf("mode %q crossSubnet %v", n.Mode, n.crossSubnet)
			}
		}},
		{name: "ipMasq with clusterCIDR", kind: VXLAN, json: vx(cluster + `,"ipMasq":true,"ipMasqBackend":"nftables"`), check: func(t *testing.T, n *NetConf) {
			if !n.IPMasq || n.clusterCIDR != netip.MustParsePrefix("10.244.0.0/16") {
				t.Errorf("ipMasq %v clusterCIDR %s", n.IPMasq, n.clusterCIDR)
			}
		}},
		{name: "podCIDR equal to clusterCIDR", kind: VXLAN, json: vx(`,"clusterCIDR":"10.244.1.0/24"`)},
		{name: "nodeIP", kind: VXLAN, json: vx(`,"nodeIP":"192.168.1.10"`), check: func(t *testing.T, n *NetConf) {
			if n.nodeIP != netip.MustParseAddr("192.168.1.10") {
				t.Errorf("nodeIP %s", n.nodeIP)
			}
		}},
		{name: "4in6 nodeIP unmapped", kind: VXLAN, json: vx(`,"nodeIP":"::ffff:192.168.1.10"`), check: func(t *testing.T, n *NetConf) {
			if n.nodeIP != netip.MustParseAddr("192.168.1.10") {
				t.Errorf("nodeIP %s", n.nodeIP)
			}
		}},
		{name: "4in6 podCIDR unmapped", kind: IPIP, json: cfg("ipip-overlay", "::ffff:10.244.1.0/120", ""), check: func(t *testing.T, n *NetConf) {
			if n.podCIDR != netip.MustParsePrefix("10.244.1.0/24") {
				t.Errorf("podCIDR %s", n.podCIDR)
			}
		}},
		{name: "vxlan IPv6 podCIDR", kind: VXLAN, json: cfg("vxlan-overlay", "fd00:10:244:1::/64", `,"clusterCIDR":"fd00:10:244::/48"`), check: func(t *testing.T, n *NetConf) {
			if n.podCIDR != netip.MustParsePrefix("fd00:10:244:1::/64") {
				t.Errorf("podCIDR %s", n.podCIDR)
			}
		}},
		{name: "absolute peersFile", kind: VXLAN, json: vx(`,"peersFile":"/etc/netloom/peers.json"`)},
		{name: "peers", kind: VXLAN, json: vx(cluster + `,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24","vtepMAC":"0a:00:00:00:00:02"},{"nodeIP":"192.168.1.12","podCIDR":"10.244.3.0/24"}]`),
			check: func(t *testing.T, n *NetConf) {
				if len(n.peers) != 2 || n.peers[0].NodeIP != netip.MustParseAddr("192.168.1.11") || n.peers[0].PodCIDR != netip.MustParsePrefix("10.244.2.0/24") ||
					n.peers[0].VTEPMAC.String() != "0a:00:00:00:00:02" || n.peers[1].VTEPMAC != nil {
					t.Errorf("peers %v", n.peers)
				}
			}},
		{name: "peer with IPv6 node address", kind: VXLAN, json: vx(`,"peers":[{"nodeIP":"2001:db8::11","podCIDR":"10.244.2.0/24"}]`)},

		// Refusals.
		{name: "missing ipam", kind: VXLAN, json: `{"cniVersion":"1.0.0","name":"ov","type":"vxlan-overlay","podCIDR":"10.244.1.0/24"}`, code: 7, field: "ipam"},
		{name: "ipam without type", kind: IPIP, json: `{"cniVersion":"1.0.0","name":"ov","type":"ipip-overlay","podCIDR":"10.244.1.0/24","ipam":{}}`, code: 7, field: "ipam"},
		{name: "missing podCIDR vxlan", kind: VXLAN, json: cfg("vxlan-overlay", "", ""), code: 7, field: "podCIDR"},
		{name: "missing podCIDR ipip", kind: IPIP, json: cfg("ipip-overlay", "", ""), code: 7, field: "podCIDR"},
		{name: "podCIDR not a CIDR", kind: VXLAN, json: cfg("vxlan-overlay", "10.244.1.0", ""), code: 7, field: "podCIDR"},
		{name: "podCIDR host bits", kind: VXLAN, json: cfg("vxlan-overlay", "10.244.1.5/24", ""), code: 7, field: "podCIDR"},
		{name: "clusterCIDR host bits", kind: VXLAN, json: vx(`,"clusterCIDR":"10.244.0.1/16"`), code: 7, field: "clusterCIDR"},
		{name: "podCIDR outside clusterCIDR", kind: VXLAN, json: vx(`,"clusterCIDR":"10.245.0.0/16"`), code: 7, field: "podCIDR"},
		{name: "podCIDR wider than clusterCIDR", kind: VXLAN, json: vx(`,"clusterCIDR":"10.244.1.0/25"`), code: 7, field: "podCIDR"},
		{name: "clusterCIDR family mismatch", kind: VXLAN, json: vx(`,"clusterCIDR":"fd00::/48"`), code: 7, field: "podCIDR"},
		{name: "ipMasq without clusterCIDR", kind: VXLAN, json: vx(`,"ipMasq":true`), code: 7, field: "clusterCIDR"},
		{name: "bad ipMasqBackend", kind: VXLAN, json: vx(cluster + `,"ipMasq":true,"ipMasqBackend":"pf"`), code: 7, field: "ipMasqBackend"},
		{name: "empty ipMasqBackend", kind: IPIP, json: ipip(`,"ipMasqBackend":""`), code: 7, field: "ipMasqBackend"},
		{name: "device too long", kind: VXLAN, json: vx(`,"device":"abcdefghijklmnop"`), code: 7, field: "device"},
		{name: "device with slash", kind: IPIP, json: ipip(`,"device":"a/b"`), code: 7, field: "device"},
		{name: "empty device defaulted", kind: VXLAN, json: vx(`,"vni":16777215,"device":""`), check: func(t *testing.T, n *NetConf) {
			if n.Device != "nlvx.16777215" {
				t.Errorf("device %q", n.Device)
			}
		}},
		{name: "bad underlayInterface", kind: VXLAN, json: vx(`,"underlayInterface":"eth 0"`), code: 7, field: "underlayInterface"},
		{name: "bad nodeIP", kind: VXLAN, json: vx(`,"nodeIP":"192.168.1"`), code: 7, field: "nodeIP"},
		{name: "nodeIP with zone", kind: VXLAN, json: vx(`,"nodeIP":"fe80::1%eth0"`), code: 7, field: "nodeIP"},
		{name: "vni -1", kind: VXLAN, json: vx(`,"vni":-1`), code: 7, field: "vni"},
		{name: "vni 2^24", kind: VXLAN, json: vx(`,"vni":16777216`), code: 7, field: "vni"},
		{name: "port 70000", kind: VXLAN, json: vx(`,"port":70000`), code: 7, field: "port"},
		{name: "port -1", kind: VXLAN, json: vx(`,"port":-1`), code: 7, field: "port"},
		{name: "bad vtepMAC", kind: VXLAN, json: vx(`,"vtepMAC":"zz"`), code: 7, field: "vtepMAC"},
		{name: "EUI-64 vtepMAC", kind: VXLAN, json: vx(`,"vtepMAC":"0a:00:00:00:00:00:00:01"`), code: 7, field: "vtepMAC"},
		{name: "multicast vtepMAC", kind: VXLAN, json: vx(`,"vtepMAC":"01:00:5e:00:00:01"`), code: 7, field: "vtepMAC"},
		{name: "mtu 10", kind: VXLAN, json: vx(`,"mtu":10`), code: 7, field: "mtu"},
		{name: "mtu 10 ipip", kind: IPIP, json: ipip(`,"mtu":10`), code: 7, field: "mtu"},
		{name: "ipip IPv6 podCIDR", kind: IPIP, json: cfg("ipip-overlay", "fd00:10:244:1::/64", ""), code: 7, field: "podCIDR"},
		{name: "ipip with vni", kind: IPIP, json: ipip(`,"vni":1`), code: 7, field: "vni"},
		{name: "ipip with vni 0", kind: IPIP, json: ipip(`,"vni":0`), code: 7, field: "vni"},
		{name: "ipip with port", kind: IPIP, json: ipip(`,"port":4789`), code: 7, field: "port"},
		{name: "ipip with vtepMAC", kind: IPIP, json: ipip(`,"vtepMAC":"0a:00:00:00:00:01"`), code: 7, field: "vtepMAC"},
		{name: "ipip with directRouting", kind: IPIP, json: ipip(`,"directRouting":true`), code: 7, field: "directRouting"},
		{name: "ipip with several vxlan keys: always the first listed", kind: IPIP, json: ipip(`,"directRouting":true,"vtepMAC":"0e:00:00:00:00:01","vni":5`), code: 7, field: "vni"},
		{name: "vxlan with mode", kind: VXLAN, json: vx(`,"mode":"crossSubnet"`), code: 7, field: "mode"},
		{name: "unknown mode", kind: IPIP, json: ipip(`,"mode":"never"`), code: 7, field: "mode"},
		{name: "relative peersFile", kind: VXLAN, json: vx(`,"peersFile":"peers.json"`), code: 7, field: "peersFile"},
		{name: "dot-relative peersFile", kind: IPIP, json: ipip(`,"peersFile":"./peers.json"`), code: 7, field: "peersFile"},
		{name: "peer bad nodeIP", kind: VXLAN, json: vx(`,"peers":[{"nodeIP":"node-2","podCIDR":"10.244.2.0/24"}]`), code: 7, field: "peers[0].nodeIP"},
		{name: "peer missing nodeIP", kind: IPIP, json: ipip(`,"peers":[{"podCIDR":"10.244.2.0/24"}]`), code: 7, field: "peers[0].nodeIP"},
		{name: "peer missing podCIDR", kind: VXLAN, json: vx(`,"peers":[{"nodeIP":"192.168.1.11"}]`), code: 7, field: "peers[0].podCIDR"},
		{name: "peer podCIDR host bits", kind: VXLAN, json: vx(`,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.1/24"}]`), code: 7, field: "peers[0].podCIDR"},
		{name: "peer bad vtepMAC", kind: VXLAN, json: vx(`,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24","vtepMAC":"ff:ff:ff:ff:ff:ff"}]`), code: 7, field: "peers[0].vtepMAC"},
		{name: "peer duplicate nodeIP", kind: VXLAN, json: vx(`,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24"},{"nodeIP":"192.168.1.11","podCIDR":"10.244.3.0/24"}]`), code: 7, field: "peers[1].nodeIP"},
		{name: "peer duplicate nodeIP 4in6", kind: IPIP, json: ipip(`,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24"},{"nodeIP":"::ffff:192.168.1.11","podCIDR":"10.244.3.0/24"}]`), code: 7, field: "peers[1].nodeIP"},
		{name: "peers overlap each other", kind: VXLAN, json: vx(`,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/23"},{"nodeIP":"192.168.1.12","podCIDR":"10.244.3.0/24"}]`), code: 7, field: "peers[1].podCIDR"},
		{name: "peer overlaps ours", kind: IPIP, json: ipip(`,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.0.0/23"}]`), code: 7, field: "peers[0].podCIDR"},
		{name: "peer equals ours", kind: VXLAN, json: vx(`,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.1.0/24"}]`), code: 7, field: "peers[0].podCIDR"},
		{name: "peer outside clusterCIDR", kind: VXLAN, json: vx(cluster + `,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.245.2.0/24"}]`), code: 7, field: "peers[0].podCIDR"},
		{name: "peer wider than clusterCIDR", kind: VXLAN, json: vx(`,"clusterCIDR":"10.244.0.0/22","peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.0.0/16"}]`), code: 7, field: "peers[0].podCIDR"},
		{name: "peer family mismatch", kind: VXLAN, json: vx(`,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"fd00:10:244:2::/64"}]`), code: 7, field: "peers[0].podCIDR"},

		// Decoding.
		{name: "wrong type mtu", kind: VXLAN, json: vx(`,"mtu":"1400"`), code: 7, field: "mtu"},
		{name: "wrong type vni", kind: VXLAN, json: vx(`,"vni":"1"`), code: 7, field: "vni"},
		{name: "wrong type directRouting", kind: VXLAN, json: vx(`,"directRouting":"yes"`), code: 7, field: "directRouting"},
		{name: "wrong type peers", kind: VXLAN, json: vx(`,"peers":{"nodeIP":"192.168.1.11"}`), code: 7, field: "peers"},
		{name: "wrong type peer nodeIP", kind: IPIP, json: ipip(`,"peers":[{"nodeIP":11,"podCIDR":"10.244.2.0/24"}]`), code: 7, field: "peers.nodeIP"},
		{name: "not JSON", kind: VXLAN, json: `{"cniVersion":"1.0.0",`, code: 6},
		{name: "empty", kind: IPIP, json: ``, code: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Parse(tc.kind, []byte(tc.json))
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
			if err == nil && tc.check != nil {
				tc.check(t, n)
			}
		})
	}
}

// TestParseVNIBoundaries walks the edges of the VNI range, since the limit is a computed constant.
func TestParseVNIBoundaries(t *testing.T) {
	for vni, ok := range map[string]bool{"-1": false, "0": true, "1": true, "16777215": true, "16777216": false, "4294967297": false} {
		_, err := Parse(VXLAN, []byte(vx(`,"vni":`+vni)))
		if (err == nil) != ok {
			t.Errorf("vni %s: err %v, want ok=%v", vni, err, ok)
		}
		if err != nil && (conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "vni")) {
			t.Errorf("vni %s: %v (code %d), want code 7 naming vni", vni, err, conf.Code(err))
		}
	}
}

// writeFile writes data to name under dir and returns its path.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadPeersFile(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "peers.json", `[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24","vtepMAC":"0a:00:00:00:00:02"}]`)
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	// One byte over the limit is refused before it is parsed (a sparse file: no 16 MiB written).
	over := filepath.Join(dir, "over.json")
	if f, err := os.Create(over); err != nil {
		t.Fatal(err)
	} else if err := f.Truncate(maxPeersFile + 1); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}

	list, err := readPeersFile(good)
	if err != nil || len(list) != 1 || list[0] != (PeerConf{NodeIP: "192.168.1.11", PodCIDR: "10.244.2.0/24", VTEPMAC: "0a:00:00:00:00:02"}) {
		t.Errorf("readPeersFile(good) = %v, %v", list, err)
	}
	if list, err := readPeersFile(writeFile(t, dir, "empty-list.json", `[]`)); err != nil || len(list) != 0 {
		t.Errorf("readPeersFile([]) = %v, %v", list, err)
	}

	for _, tc := range []struct {
		name   string
		path   string
		code   uint
		substr string
	}{
		{"symlink", link, conf.CodeInvalidConfig, "symbolic link"},
		{"missing", filepath.Join(dir, "nope.json"), conf.CodeInvalidConfig, "cannot read"},
		{"over the limit", over, conf.CodeInvalidConfig, "larger than"},
		{"not JSON", writeFile(t, dir, "bad.json", `[{"nodeIP":`), conf.CodeInvalidConfig, "not a JSON list"},
		{"object, not list", writeFile(t, dir, "obj.json", `{"nodeIP":"192.168.1.11"}`), conf.CodeInvalidConfig, "not a JSON list"},
		{"wrong type", writeFile(t, dir, "type.json", `[{"nodeIP":11}]`), conf.CodeInvalidConfig, "not a JSON list"},
		{"empty file", writeFile(t, dir, "empty.json", ``), conf.CodeInvalidConfig, "not a JSON list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readPeersFile(tc.path)
			if conf.Code(err) != tc.code || !strings.HasPrefix(err.Error(), "peersFile:") || !strings.Contains(err.Error(), tc.substr) {
				t.Errorf("readPeersFile = %v (code %d), want code %d naming peersFile and %q", err, conf.Code(err), tc.code, tc.substr)
			}
		})
	}
}

func TestCollectPeers(t *testing.T) {
	dir := t.TempDir()
	const inline = `,"clusterCIDR":"10.244.0.0/16","peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24"}]`
	for _, tc := range []struct {
		name   string
		extra  string // appended to the vxlan configuration (peersFile is added when file is set)
		file   string // peers file contents; "" for none
		node   string // this node's underlay address
		want   []string
		field  string // error: code 7 whose message starts with this
		substr string
	}{
		{name: "inline only", extra: inline, node: "192.168.1.10", want: []string{"192.168.1.11 (pods 10.244.2.0/24)"}},
		{name: "inline and file, self skipped", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"192.168.1.10","podCIDR":"10.244.1.0/24"},{"nodeIP":"192.168.1.12","podCIDR":"10.244.3.0/24","vtepMAC":"0a:00:00:00:00:03"}]`,
			want: []string{"192.168.1.11 (pods 10.244.2.0/24)", "192.168.1.12 (pods 10.244.3.0/24)"}},
		{name: "empty file", extra: inline, node: "192.168.1.10", file: `[]`, want: []string{"192.168.1.11 (pods 10.244.2.0/24)"}},
		{name: "inline peer is this node", extra: inline, node: "192.168.1.11", field: "peers[0].nodeIP", substr: "own address"},
		{name: "file lists this node with another podCIDR", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"192.168.1.10","podCIDR":"10.244.9.0/24"}]`, field: "peersFile", substr: "10.244.9.0/24"},
		{name: "file bad nodeIP", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"x","podCIDR":"10.244.3.0/24"}]`, field: "peersFile /", substr: "peers.json[0].nodeIP"},
		{name: "file bad vtepMAC", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"192.168.1.12","podCIDR":"10.244.3.0/24","vtepMAC":"01:00:00:00:00:01"}]`, field: "peersFile /", substr: "peers.json[0].vtepMAC"},
		{name: "file repeats an inline node", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"192.168.1.11","podCIDR":"10.244.3.0/24"}]`, field: "peersFile /", substr: "entry 0.nodeIP: 192.168.1.11 is listed twice (also as peers[0])"},
		{name: "file overlaps an inline pod CIDR", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"192.168.1.12","podCIDR":"10.244.2.128/25"}]`, field: "peersFile /", substr: "entry 0.podCIDR: 10.244.2.128/25 (node 192.168.1.12) overlaps 10.244.2.0/24 of peers[0]"},
		{name: "file overlaps ours", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"192.168.1.12","podCIDR":"10.244.1.0/25"}]`, field: "peersFile /", substr: "this node's podCIDR"},
		{name: "file outside clusterCIDR", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"192.168.1.12","podCIDR":"10.245.3.0/24"}]`, field: "peersFile /", substr: "clusterCIDR"},
		{name: "file pod family mismatch", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"192.168.1.12","podCIDR":"fd00::/64"}]`, field: "peersFile /", substr: "family"},
		{name: "file node family differs from the underlay", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"2001:db8::12","podCIDR":"10.244.3.0/24"}]`, field: "peersFile /", substr: "entry 0.nodeIP: 2001:db8::12 is not of the same IP family"},
		{name: "file peer takes an inline peer's VTEP MAC", extra: inline, node: "192.168.1.10",
			file: `[{"nodeIP":"192.168.1.12","podCIDR":"10.244.3.0/24","vtepMAC":"0e:4c:c0:a8:01:0b"}]`, field: "peersFile /", substr: "entry 0.vtepMAC: 0e:4c:c0:a8:01:0b (node 192.168.1.12) is also the VTEP MAC of peers[0]"},
		{name: "file is a directory", extra: inline, node: "192.168.1.10", file: "directory", field: "peersFile", substr: "not a regular file"},
		{name: "file is a symlink", extra: inline, node: "192.168.1.10", file: "symlink", field: "peersFile", substr: "symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := tc.extra
			if tc.file != "" {
				p := filepath.Join(t.TempDir(), "peers.json")
				if tc.file == "symlink" {
					if err := os.Symlink(writeFile(t, dir, "real.json", "[]"), p); err != nil {
						t.Fatal(err)
					}
				} else if tc.file == "directory" {
					if err := os.Mkdir(p, 0o700); err != nil {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				extra += `,"peersFile":"` + p + `"`
			}
			n, err := Parse(VXLAN, []byte(vx(extra)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			nw := &Network{Conf: n, NodeIP: netip.MustParseAddr(tc.node)}
			peers, err := nw.collectPeers()
			if tc.field != "" {
				if conf.Code(err) != conf.CodeInvalidConfig || !strings.HasPrefix(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.substr) {
					t.Fatalf("collectPeers = %v (code %d), want code 7 starting %q, naming %q", err, conf.Code(err), tc.field, tc.substr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range peers {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("peers = %q, want %q", got, tc.want)
			}
		})
	}
}
