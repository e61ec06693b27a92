package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/route"
)

// peerRoute is one route to a peer's pod CIDR: through the link the peer's InternalIP is on, via it.
type peerRoute struct {
	Dst       netip.Prefix
	Via       netip.Addr
	LinkIndex int
}

func (r peerRoute) netlink() netlink.Route {
	return netlink.Route{
		LinkIndex: r.LinkIndex,
		Dst:       &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Gw:        r.Via.AsSlice(),
		Protocol:  route.ProtoCluster,
		Table:     unix.RT_TABLE_MAIN,
	}
}

// nextHop says how this node reaches addr: the link and whether addr is on that link's network (no
// gateway between); a lookup the tests replace.
type nextHop func(addr netip.Addr) (linkIndex int, onLink bool, err error)

func kernelNextHop(addr netip.Addr) (int, bool, error) {
	rs, err := netlink.RouteGet(addr.AsSlice())
	if err != nil {
		return 0, false, err
	}
	if len(rs) == 0 {
		return 0, false, errors.New("no route")
	}
	return rs[0].LinkIndex, rs[0].Gw == nil, nil
}

// Router keeps the routes of routed mode: one per peer pod CIDR, protocol route.ProtoCluster, via the
// peer's InternalIP of that family. It touches no other route.
type Router struct {
	cfg     *Config
	log     *slog.Logger
	lookup  nextHop
	self    []netip.Prefix         // this node's pod CIDRs, which no peer may overlap
	byPeer  map[string][]peerRoute // what Apply installed per peer
	refused map[string]string      // peers left out, and why
	ops     atomic.Int64           // kernel route changes made (replace + delete)
}

// NewRouter returns a Router for the kernel of the calling namespace.
func NewRouter(cfg *Config, log *slog.Logger) *Router {
	return &Router{cfg: cfg, log: log, lookup: kernelNextHop, byPeer: map[string][]peerRoute{}, refused: map[string]string{}}
}

// SetSelf records this node's pod CIDRs.
func (r *Router) SetSelf(n Node) error { r.self = n.PodCIDRs; return nil }

// Close does nothing: the routes stay.
func (r *Router) Close() {}

// Ops is the number of kernel route changes made so far.
func (r *Router) Ops() int64 { return r.ops.Load() }

// Peers is the number of peers with routes, and of peers refused.
func (r *Router) Peers() (routed, refused int) { return len(r.byPeer), len(r.refused) }

// plan is the routes n needs. A pod CIDR that cannot be routed this way is left out and said why: it is
// outside the cluster CIDR or overlaps this node's, the peer has no InternalIP of its family, or that
// address is not on one of this node's networks (a router between: routed mode needs one L2 network;
// the vxlan and ipip modes tunnel instead).
func (r *Router) plan(n Node) ([]peerRoute, []string) {
	var out []peerRoute
	var why []string
	for _, p := range n.PodCIDRs {
		if !r.cfg.InCluster(p) {
			why = append(why, fmt.Sprintf("pod CIDR %s is outside clusterCIDR %s", p, r.cfg.ClusterCIDR))
			continue
		}
		if overlapsAny(p, r.self) {
			why = append(why, fmt.Sprintf("pod CIDR %s overlaps this node's %v", p, r.self))
			continue
		}
		via, ok := n.InternalIP(p)
		if !ok {
			why = append(why, fmt.Sprintf("no InternalIP of the family of pod CIDR %s", p))
			continue
		}
		idx, onLink, err := r.lookup(via)
		if err != nil {
			why = append(why, fmt.Sprintf("no route to its InternalIP %s: %v", via, err))
			continue
		}
		if !onLink {
			why = append(why, fmt.Sprintf("its InternalIP %s is behind a router, not on this node's network: routed mode needs the nodes on one L2 network (use mode vxlan or ipip across networks)", via))
			continue
		}
		out = append(out, peerRoute{Dst: p, Via: via, LinkIndex: idx})
	}
	return out, why
}

func overlapsAny(p netip.Prefix, set []netip.Prefix) bool {
	for _, q := range set {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

// Apply makes the kernel hold exactly n's routes for peer n: routes it had and no longer needs are
// removed, new or changed ones replaced. Only this peer's routes are touched.
func (r *Router) Apply(n Node) error {
	want, why := r.plan(n)
	r.noteRefusal(n.Name, why)
	had := r.byPeer[n.Name]
	var errs []error
	for _, h := range had {
		if !containsDst(want, h.Dst) {
			errs = append(errs, r.del(h))
		}
	}
	for _, w := range want {
		if !containsRoute(had, w) {
			errs = append(errs, r.replace(w))
		}
	}
	if len(want) == 0 {
		delete(r.byPeer, n.Name)
	} else {
		r.byPeer[n.Name] = want
	}
	return errors.Join(errs...)
}

// Remove removes every route of the peer called name.
func (r *Router) Remove(name string) error {
	var errs []error
	for _, h := range r.byPeer[name] {
		errs = append(errs, r.del(h))
	}
	delete(r.byPeer, name)
	delete(r.refused, name)
	return errors.Join(errs...)
}

// Resync makes the kernel's ProtoCluster routes exactly those of peers: it removes any other route of
// that protocol (a peer deleted while the agent was down, a route someone changed) and replaces each
// missing or different one. It returns the number of kernel changes it made.
func (r *Router) Resync(peers []Node) (int, error) {
	want := map[netip.Prefix]peerRoute{}
	byPeer := map[string][]peerRoute{}
	seen := map[string]bool{}
	for _, n := range peers {
		seen[n.Name] = true
		rs, why := r.plan(n)
		r.noteRefusal(n.Name, why)
		for _, pr := range rs {
			want[pr.Dst] = pr
		}
		if len(rs) > 0 {
			byPeer[n.Name] = rs
		}
	}
	have, err := route.ListByProtocol(route.ProtoCluster)
	if err != nil {
		return 0, err
	}
	before := r.ops.Load()
	var errs []error
	ok := map[netip.Prefix]bool{}
	for _, h := range have {
		w, wanted := want[h.Dst]
		if wanted && h.LinkIndex == w.LinkIndex && h.GW == w.Via && !ok[h.Dst] {
			ok[h.Dst] = true
			continue
		}
		errs = append(errs, r.delInstalled(h))
	}
	dsts := make([]netip.Prefix, 0, len(want))
	for d := range want {
		dsts = append(dsts, d)
	}
	sort.Slice(dsts, func(i, j int) bool { return dsts[i].String() < dsts[j].String() })
	for _, d := range dsts {
		if !ok[d] {
			errs = append(errs, r.replace(want[d]))
		}
	}
	r.byPeer = byPeer
	for name := range r.refused {
		if !seen[name] {
			delete(r.refused, name)
		}
	}
	return int(r.ops.Load() - before), errors.Join(errs...)
}

// noteRefusal records why the peer called name is (partly) not routed, logging when that changes.
func (r *Router) noteRefusal(name string, why []string) {
	if len(why) == 0 {
		delete(r.refused, name)
		return
	}
	if r.refused[name] != fmt.Sprint(why) {
		r.log.Warn("peer not routed", "node", name, "reasons", why)
	}
	r.refused[name] = fmt.Sprint(why)
}

func (r *Router) replace(pr peerRoute) error {
	r.ops.Add(1)
	r.log.Debug("route replace", "dst", pr.Dst, "via", pr.Via)
	return route.ReplaceRaw(pr.netlink())
}

func (r *Router) del(pr peerRoute) error {
	r.ops.Add(1)
	r.log.Debug("route delete", "dst", pr.Dst, "via", pr.Via)
	return route.DelRaw(pr.netlink())
}

func (r *Router) delInstalled(h route.Installed) error {
	r.ops.Add(1)
	r.log.Info("removing a route no peer owns", "dst", h.Dst, "via", h.GW)
	return route.DelInstalled(h)
}

func containsDst(rs []peerRoute, d netip.Prefix) bool {
	for _, r := range rs {
		if r.Dst == d {
			return true
		}
	}
	return false
}

func containsRoute(rs []peerRoute, w peerRoute) bool {
	for _, r := range rs {
		if r == w {
			return true
		}
	}
	return false
}
