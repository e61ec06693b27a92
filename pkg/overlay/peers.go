package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
)

// Peer is another node of the overlay: where its pods live and how to reach it.
type Peer struct {
	NodeIP  netip.Addr       // underlay address: the outer destination
	PodCIDR netip.Prefix     // its pods' addresses
	VTEPMAC net.HardwareAddr // vxlan: its VTEP's MAC; nil: derived from NodeIP
}

func (p Peer) String() string { return fmt.Sprintf("%s (pods %s)", p.NodeIP, p.PodCIDR) }

// maxPeersFile bounds what is read from peersFile: far above any real cluster's list, far below what
// would hurt a plugin process.
const maxPeersFile = 16 << 20

func parsePeers(field string, in []PeerConf) ([]Peer, error) {
	out := make([]Peer, 0, len(in))
	for i, pc := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		a, err := netip.ParseAddr(pc.NodeIP)
		if err != nil || a.Zone() != "" {
			return nil, conf.Invalid(f+".nodeIP", "%q is not an IP address; give the peer node's underlay address", pc.NodeIP)
		}
		p := Peer{NodeIP: a.Unmap()}
		if p.PodCIDR, err = parseCIDR(f+".podCIDR", pc.PodCIDR, true); err != nil {
			return nil, err
		}
		if pc.VTEPMAC != "" {
			if p.VTEPMAC, err = parseMAC(f+".vtepMAC", pc.VTEPMAC); err != nil {
				return nil, err
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// checkPeerSet refuses a peer list that cannot be routed: two entries for one node, pod CIDRs that
// overlap each other or this node's, a pod CIDR outside the cluster CIDR.
func checkPeerSet(peers []Peer, label func(i int) string, own, cluster netip.Prefix) error {
	byNode := map[netip.Addr]int{}
	for i, p := range peers {
		f := label(i)
		if j, dup := byNode[p.NodeIP]; dup {
			return conf.Invalid(f+".nodeIP", "%s is listed twice (also as %s); give each node once", p.NodeIP, label(j))
		}
		byNode[p.NodeIP] = i
		if p.PodCIDR.Addr().Is4() != own.Addr().Is4() {
			return conf.Invalid(f+".podCIDR", "%s is not of the same IP family as podCIDR %s", p.PodCIDR, own)
		}
		if cluster.IsValid() && (p.PodCIDR.Bits() < cluster.Bits() || !cluster.Contains(p.PodCIDR.Addr())) {
			return conf.Invalid(f+".podCIDR", "%s (node %s) is not inside clusterCIDR %s", p.PodCIDR, p.NodeIP, cluster)
		}
		if p.PodCIDR.Overlaps(own) {
			return conf.Invalid(f+".podCIDR", "%s (node %s) overlaps this node's podCIDR %s; every node needs its own pod CIDR", p.PodCIDR, p.NodeIP, own)
		}
		for j, q := range peers[:i] {
			if p.PodCIDR.Overlaps(q.PodCIDR) {
				return conf.Invalid(f+".podCIDR", "%s (node %s) overlaps %s of %s (node %s); every node needs its own pod CIDR", p.PodCIDR, p.NodeIP, q.PodCIDR, label(j), q.NodeIP)
			}
		}
	}
	return nil
}

// readPeersFile reads the peers list at path: a JSON array of {"nodeIP", "podCIDR", "vtepMAC"} objects.
// It is read on every call, so the file is how a node learns of joins and departures. The file is
// opened without following a symlink in its last component.
func readPeersFile(path string) ([]PeerConf, error) {
	// O_NONBLOCK: a FIFO planted at the path must not hang the plugin; it is refused below.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, conf.Invalid("peersFile", "%q is a symbolic link; give the file's real path", path)
		}
		return nil, conf.Invalid("peersFile", "cannot read %q: %v", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, conf.Invalid("peersFile", "%q is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPeersFile+1))
	if err != nil {
		return nil, conf.IOFailure("peersFile %q: %v", path, err)
	}
	if len(data) > maxPeersFile {
		return nil, conf.Invalid("peersFile", "%q is larger than %d bytes", path, maxPeersFile)
	}
	var list []PeerConf
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, conf.Invalid("peersFile", "%q is not a JSON list of {\"nodeIP\", \"podCIDR\", \"vtepMAC\"} objects: %v", path, err)
	}
	return list, nil
}
