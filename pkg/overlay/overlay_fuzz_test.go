package overlay

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
)

func FuzzParse(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex, false)
		f.Add(ex, true)
	}
	const cluster = `,"clusterCIDR":"10.244.0.0/16"`
	peers := `,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24","vtepMAC":"0a:00:00:00:00:02"},{"nodeIP":"::ffff:192.168.1.12","podCIDR":"10.244.3.0/24"}]`
	for _, tc := range []struct {
		json string
		ipip bool
	}{
		{vx(cluster + peers + `,"vni":42,"port":8472,"vtepMAC":"0e:4c:0a:00:00:01","directRouting":true,"ipMasq":true`), false},
		{vx(`,"vni":16777215,"nodeIP":"192.168.1.10","underlayInterface":"eth0","mtu":1450`), false},
		{ipip(cluster + `,"mode":"crossSubnet","device":"tunl1","ipMasqBackend":"nftables","ipMasq":true`), true},
		{ipip(`,"vni":1`), true},
		{cfg("vxlan-overlay", "fd00:244:1::/64", `,"clusterCIDR":"fd00:244::/48","peers":[{"nodeIP":"fd00::11","podCIDR":"fd00:244:2::/64"}]`), false},
		{cfg("vxlan-overlay", "::ffff:10.244.1.0/120", `,"clusterCIDR":"::ffff:10.244.0.0/112"`), false},
		{vx(cluster + `,"peers":[{"nodeIP":"192.168.1.11","podCIDR":"10.244.1.0/25"}]`), false},
		{vx(`,"peersFile":"/etc/netloom/peers.json","ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]]}`), false},
	} {
		f.Add([]byte(tc.json), tc.ipip)
	}
	f.Fuzz(func(t *testing.T, stdin []byte, ipip bool) {
		kind := VXLAN
		if ipip {
			kind = IPIP
		}
		n, err := Parse(kind, stdin)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if n.kind != kind || n.IPAM.Type == "" {
			t.Fatalf("kind %v, ipam %q", n.kind, n.IPAM.Type)
		}
		for field, name := range map[string]string{"device": n.Device, "underlayInterface": n.UnderlayInterface} {
			if name == "" && field != "device" {
				continue
			}
			if err := conf.ValidateIfName(field, name); err != nil {
				t.Fatalf("accepted %s %q: %v", field, name, err)
			}
		}
		if !n.podCIDR.IsValid() || n.podCIDR != n.podCIDR.Masked() || n.podCIDR.Addr().Is4In6() {
			t.Fatalf("podCIDR %s", n.podCIDR)
		}
		if c := n.clusterCIDR; c.IsValid() {
			if c != c.Masked() || c.Addr().Is4() != n.podCIDR.Addr().Is4() || c.Bits() > n.podCIDR.Bits() || !c.Contains(n.podCIDR.Addr()) {
				t.Fatalf("podCIDR %s is not inside clusterCIDR %s", n.podCIDR, c)
			}
		}
		if n.IPMasq && !n.clusterCIDR.IsValid() {
			t.Fatal("ipMasq without clusterCIDR")
		}
		if b := n.IPMasqBackend; b != nil && *b != firewall.BackendIPTables && *b != firewall.BackendNFTables {
			t.Fatalf("ipMasqBackend %q", *b)
		}
		if n.nodeIP.IsValid() && (n.nodeIP.Is4In6() || n.nodeIP.Zone() != "") {
			t.Fatalf("nodeIP %s", n.nodeIP)
		}
		if n.MTU != 0 && (n.MTU < conf.MinMTU || n.MTU > conf.MaxMTU) {
			t.Fatalf("mtu %d", n.MTU)
		}
		if n.PeersFile != "" && !strings.HasPrefix(n.PeersFile, "/") {
			t.Fatalf("peersFile %q", n.PeersFile)
		}
		if kind == IPIP {
			if !n.podCIDR.Addr().Is4() || n.VNI != nil || n.Port != 0 || n.vtepMAC != nil || n.DirectRouting ||
				(n.Mode != ModeAlways && n.Mode != ModeCrossSubnet) || n.crossSubnet != (n.Mode == ModeCrossSubnet) {
				t.Fatalf("ipip-overlay accepted %+v", n)
			}
		} else {
			if n.Mode != "" || n.vni < 0 || n.vni > maxVNI || n.Port < 1 || n.Port > 65535 || n.crossSubnet != n.DirectRouting {
				t.Fatalf("vxlan-overlay accepted mode %q vni %d port %d", n.Mode, n.vni, n.Port)
			}
			if n.vtepMAC != nil && (len(n.vtepMAC) != 6 || n.vtepMAC[0]&1 != 0) {
				t.Fatalf("vtepMAC %s", n.vtepMAC)
			}
		}
		if len(n.peers) != len(n.Peers) {
			t.Fatalf("%d peers of %d", len(n.peers), len(n.Peers))
		}
		checkPeers(t, n.peers, n.podCIDR, n.clusterCIDR)
		// The IPAM plugin gets stdin, or stdin with podCIDR as host-local's range: JSON either way.
		out, err := ipamStdin(stdin, n)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
		} else if !json.Valid(out) {
			t.Fatalf("ipamStdin gave invalid JSON %q", out)
		}
	})
}

// checkPeers holds accepted peers to checkPeerSet's promise: routable, one entry per node.
func checkPeers(t *testing.T, peers []Peer, own, cluster netip.Prefix) {
	t.Helper()
	nodes := map[netip.Addr]bool{}
	for i, p := range peers {
		if nodes[p.NodeIP] || p.NodeIP.Is4In6() || !p.PodCIDR.IsValid() || p.PodCIDR != p.PodCIDR.Masked() {
			t.Fatalf("peer %d %v: duplicate node or not a network prefix", i, p)
		}
		nodes[p.NodeIP] = true
		if p.PodCIDR.Overlaps(own) || p.PodCIDR.Addr().Is4() != own.Addr().Is4() {
			t.Fatalf("peer %v against podCIDR %s", p, own)
		}
		if cluster.IsValid() && (p.PodCIDR.Bits() < cluster.Bits() || !cluster.Contains(p.PodCIDR.Addr())) {
			t.Fatalf("peer %v outside clusterCIDR %s", p, cluster)
		}
		for _, q := range peers[:i] {
			if p.PodCIDR.Overlaps(q.PodCIDR) {
				t.Fatalf("peers %v and %v overlap", p, q)
			}
		}
		if p.VTEPMAC != nil && (len(p.VTEPMAC) != 6 || p.VTEPMAC[0]&1 != 0) {
			t.Fatalf("peer %v: vtepMAC %s", p, p.VTEPMAC)
		}
	}
}

// FuzzReadPeersFile writes arbitrary bytes as the peers file and takes them through readPeersFile,
// parsePeers and checkPeerSet, as Resolve does.
func FuzzReadPeersFile(f *testing.F) {
	for _, s := range []string{
		`[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24","vtepMAC":"0a:00:00:00:00:02"}]`,
		`[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24"},{"nodeIP":"192.168.1.12","podCIDR":"10.244.3.0/24"},{"nodeIP":"192.168.1.10","podCIDR":"10.244.1.0/24"}]`,
		`[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.0/24"},{"nodeIP":"192.168.1.11","podCIDR":"10.244.4.0/24"}]`,
		`[{"nodeIP":"fd00::11","podCIDR":"fd00:244:2::/64"}]`,
		`[]`, `{}`, ``, `[{"nodeIP":"x"}]`, `[{"nodeIP":"192.168.1.11","podCIDR":"10.244.2.5/24","vtepMAC":"01:00:5e:00:00:01"}]`,
		`[{"nodeIP":"fe80::1%eth0","podCIDR":"::ffff:10.244.9.0/120"}]`,
	} {
		f.Add([]byte(s), "10.244.1.0/24", "10.244.0.0/16")
	}
	f.Fuzz(func(t *testing.T, data []byte, own, cluster string) {
		ownP, err := netip.ParsePrefix(own)
		if err != nil || ownP != ownP.Masked() {
			return
		}
		clusterP, _ := netip.ParsePrefix(cluster)
		if clusterP.IsValid() && clusterP != clusterP.Masked() {
			return
		}
		path := filepath.Join(t.TempDir(), "peers.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		list, err := readPeersFile(path)
		if err != nil {
			if te := fuzzseed.RequireCNIError(t, err); !strings.HasPrefix(te.Msg, "peersFile") {
				t.Fatalf("error %q does not name peersFile", te.Msg)
			}
			return
		}
		peers, err := parsePeers("peersFile", list)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if len(peers) != len(list) {
			t.Fatalf("%d peers of %d entries", len(peers), len(list))
		}
		if err := checkPeerSet(peers, func(i int) string { return fmt.Sprintf("peersFile[%d]", i) }, ownP, clusterP); err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		checkPeers(t, peers, ownP, clusterP)
	})
}

func FuzzParsePeers(f *testing.F) {
	f.Add("192.168.1.11", "10.244.2.0/24", "0a:00:00:00:00:02")
	f.Add("::ffff:192.168.1.11", "::ffff:10.244.2.0/120", "")
	f.Add("fd00::11", "fd00:244:2::/64", "0a:00:00:00:00:02:03:04")
	f.Add("fe80::1%eth0", "10.244.2.5/24", "01:00:5e:00:00:01")
	f.Fuzz(func(t *testing.T, nodeIP, podCIDR, vtepMAC string) {
		peers, err := parsePeers("peers", []PeerConf{{NodeIP: nodeIP, PodCIDR: podCIDR, VTEPMAC: vtepMAC}})
		if err != nil {
			if te := fuzzseed.RequireCNIError(t, err); !strings.HasPrefix(te.Msg, "peers[0].") {
				t.Fatalf("error %q does not name the peer's key", te.Msg)
			}
			return
		}
		p := peers[0]
		if !p.NodeIP.IsValid() || p.NodeIP.Is4In6() || p.NodeIP.Zone() != "" || p.PodCIDR != p.PodCIDR.Masked() || p.PodCIDR.Addr().Is4In6() {
			t.Fatalf("parsePeers(%q, %q) = %v", nodeIP, podCIDR, p)
		}
		if (vtepMAC == "") != (p.VTEPMAC == nil) || (p.VTEPMAC != nil && (len(p.VTEPMAC) != 6 || p.VTEPMAC[0]&1 != 0)) {
			t.Fatalf("vtepMAC %q parsed as %v", vtepMAC, p.VTEPMAC)
		}
		_ = p.String()
	})
}
