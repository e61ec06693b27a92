package cluster

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync/atomic"

	"github.com/netloom/netloom/pkg/overlay"
)

// datapath is what a mode does in the kernel for its peers. Every method runs on the agent's one
// worker, but Ops, which the metrics handler calls too (an atomic counter).
type datapath interface {
	// SetSelf records this node as its conflist is written (bgp mode starts its speaker then).
	SetSelf(n Node) error
	// Apply brings one peer's state in line with n; Remove takes the peer called name out.
	Apply(n Node) error
	Remove(name string) error
	// Resync makes the kernel match exactly peers (all of them) and returns how many changes it made.
	Resync(peers []Node) (int, error)
	// Peers counts the peers in use and those left out; Ops the kernel changes made so far.
	Peers() (routed, refused int)
	Ops() int64
	// Close is called when the agent stops; the datapath stays in the kernel.
	Close()
}

func newDatapath(cfg *Config, log *slog.Logger) datapath {
	switch cfg.Mode {
	case ModeRouted:
		return NewRouter(cfg, log)
	case ModeBGP:
		return newBGPPath(cfg, log)
	}
	return &overlayPath{cfg: cfg, log: log, kind: overlayKind(cfg), peers: map[string]Node{}, refused: map[string]string{}}
}

// overlayPath is the datapath of vxlan and ipip modes: the overlay plugin's tunnel device and its
// per-peer routes (and, for VXLAN, neighbour and FDB entries), reconciled by the same code as `netloom overlay sync` from the
// node's conflist and the peers file the agent writes. A peer change rewrites the file and reconciles:
// the kernel changes are that peer's entries only (the reconcile diffs against the kernel).
type overlayPath struct {
	cfg     *Config
	log     *slog.Logger
	kind    overlay.Kind
	self    Node
	peers   map[string]Node
	refused map[string]string
	used    int
	ops     atomic.Int64
}

func (o *overlayPath) SetSelf(n Node) error { o.self = n; return nil }
func (o *overlayPath) Close()               {}

func (o *overlayPath) Apply(n Node) error {
	o.peers[n.Name] = n
	return o.sync()
}

func (o *overlayPath) Remove(name string) error {
	if _, ok := o.peers[name]; !ok {
		return nil
	}
	delete(o.peers, name)
	return o.sync()
}

func (o *overlayPath) Resync(peers []Node) (int, error) {
	o.peers = map[string]Node{}
	for _, n := range peers {
		o.peers[n.Name] = n
	}
	before := o.ops.Load()
	err := o.sync()
	return int(o.ops.Load() - before), err
}

func (o *overlayPath) Peers() (int, int) { return o.used, len(o.refused) }
func (o *overlayPath) Ops() int64        { return o.ops.Load() }

// sync writes the peers file from the peers that can be reached through the tunnel and reconciles.
func (o *overlayPath) sync() error {
	ownPod, ownIP, ok := o.self.v4()
	if !ok {
		return nil // no conflist yet: nothing to reconcile against
	}
	names := make([]string, 0, len(o.peers))
	for name := range o.peers {
		names = append(names, name)
	}
	sort.Strings(names)
	var list []overlay.PeerConf
	var taken []netip.Prefix
	seenIP := map[netip.Addr]string{}
	refused := map[string]string{}
	for _, name := range names {
		n := o.peers[name]
		pod, ip, ok := n.v4()
		why := ""
		switch {
		case !ok:
			why = fmt.Sprintf("no IPv4 pod CIDR with an IPv4 InternalIP (%s mode carries IPv4 pods over IPv4)", o.cfg.Mode)
		case !o.cfg.InCluster(pod):
			why = fmt.Sprintf("pod CIDR %s is outside clusterCIDR %s", pod, o.cfg.ClusterCIDR)
		case pod.Overlaps(ownPod) || overlapsAny(pod, taken):
			why = fmt.Sprintf("pod CIDR %s overlaps this node's or another peer's", pod)
		case ip == ownIP || seenIP[ip] != "":
			why = fmt.Sprintf("InternalIP %s is this node's or %s's too", ip, seenIP[ip])
		}
		if why != "" {
			if o.refused[name] != why {
				o.log.Warn("peer not reached", "node", name, "reason", why)
			}
			refused[name] = why
			continue
		}
		taken = append(taken, pod)
		seenIP[ip] = name
		peer := overlay.PeerConf{NodeIP: ip.String(), PodCIDR: pod.String()}
		if o.kind == overlay.VXLAN {
			peer.VTEPMAC = n.Annotations[AnnotationVTEPMAC]
		}
		list = append(list, peer)
	}
	o.refused, o.used = refused, len(list)
	if list == nil {
		list = []overlay.PeerConf{}
	}
	raw, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if _, err := WriteIfChanged(o.cfg.PeersFile(), append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("peers file: %w", err)
	}
	return o.reconcile()
}

// reconcile runs the overlay's reconcile with this node's overlay plugin configuration.
func (o *overlayPath) reconcile() error {
	p, err := tunnelPlugin(o.cfg, o.self)
	if err != nil {
		return err
	}
	p["cniVersion"], p["name"] = CNIVersionFor(o.cfg, o.self.RuntimeVersion), o.cfg.NetworkName
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	n, err := overlay.Parse(o.kind, raw)
	if err != nil {
		return err
	}
	nw, err := n.Resolve()
	if err != nil {
		return err
	}
	done, err := nw.Sync()
	o.ops.Add(int64(len(done)))
	for _, d := range done {
		o.log.Debug("overlay", "change", d)
	}
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", nw.Conf.Device, err)
	}
	return nil
}
