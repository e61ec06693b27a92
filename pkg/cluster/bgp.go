package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/netloom/netloom/pkg/bgp/daemon"
)

// bgpPath is bgp mode's datapath: netloomd's BGP speaker, run inside the agent, originates this node's
// pod CIDRs, has an iBGP session with every other node on this node's network (the node mesh) and one
// with each configured router whose nodeSelector matches this Node, and installs the best paths its
// peers send as kernel routes (protocol 79, pkg/bgp/daemon). A Node added or deleted adds or deletes
// that node's sessions only; the routes follow from BGP.
type bgpPath struct {
	cfg     *Config
	log     *slog.Logger
	lookup  nextHop
	speaker *daemon.Daemon                // started by the first SetSelf: the router ID is this node's InternalIP
	live    atomic.Pointer[daemon.Daemon] // the same, for the metrics' goroutine
	self    Node
	mesh    map[string][]string // peer name -> the neighbour addresses of its mesh sessions
	routers map[string]bool     // addresses of the routers in use
	refused map[string]string
	ops     atomic.Int64 // sessions added or deleted, prefixes originated or withdrawn
}

func newBGPPath(cfg *Config, log *slog.Logger) *bgpPath {
	return &bgpPath{cfg: cfg, log: log, lookup: kernelNextHop, mesh: map[string][]string{}, routers: map[string]bool{}, refused: map[string]string{}}
}

// opTimeout bounds one call into the speaker.
const opTimeout = 10 * time.Second

// SetSelf starts the speaker on first use, then originates this node's pod CIDRs and sets the router
// sessions this Node's labels select.
func (b *bgpPath) SetSelf(n Node) error {
	b.self = n
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if b.speaker == nil {
		if err := b.start(n); err != nil {
			return err
		}
	}
	changed, err := b.speaker.Originate(ctx, n.PodCIDRs)
	b.ops.Add(int64(changed))
	if err != nil {
		return err
	}
	return b.syncRouters(ctx, n)
}

// start runs the speaker with this node's first IPv4 InternalIP as its router ID and no neighbours.
func (b *bgpPath) start(n Node) error {
	var rid netip.Addr
	for _, a := range n.InternalIPs {
		if a.Is4() {
			rid = a
			break
		}
	}
	if !rid.IsValid() {
		return fmt.Errorf("node %s: bgp mode needs an IPv4 InternalIP, the speaker's router ID (it has %v)", n.Name, n.InternalIPs)
	}
	raw, err := json.Marshal(map[string]any{
		"bgp":      map[string]any{"asn": b.cfg.BGP.ASN, "routerID": rid.String(), "listenPort": b.cfg.BGP.ListenPort, "neighbors": []any{}},
		"api":      map[string]any{"socket": b.cfg.BGPSocket()},
		"logLevel": b.cfg.LogLevel,
	})
	if err != nil {
		return err
	}
	dc, err := daemon.ParseConfig(raw)
	if err != nil {
		return fmt.Errorf("bgp speaker: %w", err)
	}
	// Routes the previous agent left stay until the sessions had time to come back: a graceful
	// restart's time, or a hold time.
	dc.AdoptFor = time.Duration(max(uint64(b.cfg.BGP.gracefulRestart()), b.cfg.BGP.HoldTime)) * time.Second
	// The speaker lives as long as the process: on SIGTERM the agent abandons it (Close), so the
	// sessions end with the process and peers keep this node's routes through graceful restart.
	if b.speaker, err = daemon.Start(context.Background(), dc, b.log.With("component", "bgp")); err != nil {
		return fmt.Errorf("bgp speaker: %w", err)
	}
	b.live.Store(b.speaker)
	return nil
}

// syncRouters sets exactly the router sessions whose nodeSelector matches n's labels.
func (b *bgpPath) syncRouters(ctx context.Context, n Node) error {
	want := map[string]daemon.Neighbor{}
	for _, r := range b.cfg.BGP.Neighbors {
		if r.selector.Matches(labels.Set(n.Labels)) {
			want[r.Address] = r.Neighbor
		}
	}
	for addr := range b.routers {
		if _, ok := want[addr]; ok {
			continue
		}
		if err := b.deleteNeighbor(ctx, addr); err != nil {
			return err
		}
		delete(b.routers, addr)
	}
	for addr, nb := range want {
		if err := b.setNeighbor(ctx, nb); err != nil {
			return err
		}
		b.routers[addr] = true
	}
	return nil
}

// plan is the mesh sessions peer n needs, one per InternalIP on this node's network, each carrying
// its own family; why says what was left out.
func (b *bgpPath) plan(n Node) ([]daemon.Neighbor, []string) {
	if !b.cfg.BGP.mesh() {
		return nil, nil
	}
	var out []daemon.Neighbor
	var why []string
	for _, ip := range n.InternalIPs {
		if slices.Contains(b.self.InternalIPs, ip) {
			why = append(why, fmt.Sprintf("InternalIP %s is this node's", ip))
			continue
		}
		_, onLink, err := b.lookup(ip)
		switch {
		case err != nil:
			why = append(why, fmt.Sprintf("no route to its InternalIP %s: %v", ip, err))
			continue
		case !onLink:
			why = append(why, fmt.Sprintf("its InternalIP %s is behind a router: the node mesh joins the nodes of one network; reach it through a router in bgp.neighbors", ip))
			continue
		}
		fam := daemon.FamilyIPv4
		if ip.Is6() {
			fam = daemon.FamilyIPv6
		}
		out = append(out, daemon.Neighbor{
			Address: ip.String(), ASN: b.cfg.BGP.ASN, HoldTime: b.cfg.BGP.HoldTime,
			GracefulRestart: b.cfg.BGP.gracefulRestart(), AddressFamilies: []string{fam},
		})
	}
	if len(out) == 0 && len(why) == 0 {
		why = append(why, "no InternalIP")
	}
	return out, why
}

// Apply sets peer n's mesh sessions.
func (b *bgpPath) Apply(n Node) error {
	if b.speaker == nil {
		return nil // no conflist yet; the resync after it brings the peers in
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	want, why := b.plan(n)
	if len(want) == 0 {
		if b.refused[n.Name] == "" {
			b.log.Warn("peer not meshed", "node", n.Name, "reason", fmt.Sprint(why))
		}
		b.refused[n.Name] = fmt.Sprint(why)
	} else {
		delete(b.refused, n.Name)
	}
	var addrs []string
	for _, nb := range want {
		if err := b.setNeighbor(ctx, nb); err != nil {
			return err
		}
		addrs = append(addrs, nb.Address)
	}
	for _, old := range b.mesh[n.Name] {
		if !slices.Contains(addrs, old) {
			if err := b.deleteNeighbor(ctx, old); err != nil {
				return err
			}
		}
	}
	if len(addrs) == 0 {
		delete(b.mesh, n.Name)
	} else {
		b.mesh[n.Name] = addrs
	}
	return nil
}

// Remove ends peer name's mesh sessions; its paths leave the kernel with them.
func (b *bgpPath) Remove(name string) error {
	delete(b.refused, name)
	if b.speaker == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for _, addr := range b.mesh[name] {
		if err := b.deleteNeighbor(ctx, addr); err != nil {
			return err
		}
	}
	delete(b.mesh, name)
	return nil
}

// Resync makes the sessions exactly the peers' and the routers', and has the speaker check the
// kernel's routes against its best paths (drift).
func (b *bgpPath) Resync(peers []Node) (int, error) {
	if b.speaker == nil {
		return 0, nil
	}
	before := b.ops.Load()
	keep := map[string]bool{}
	for a := range b.routers {
		keep[a] = true
	}
	seen := map[string]bool{}
	for _, n := range peers {
		seen[n.Name] = true
		if err := b.Apply(n); err != nil {
			return int(b.ops.Load() - before), err
		}
		for _, a := range b.mesh[n.Name] {
			keep[a] = true
		}
	}
	for name := range b.mesh {
		if !seen[name] {
			if err := b.Remove(name); err != nil {
				return int(b.ops.Load() - before), err
			}
		}
	}
	for name := range b.refused {
		if !seen[name] {
			delete(b.refused, name)
		}
	}
	// Sessions nobody asked for (a previous configuration's): gone.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for _, a := range b.speaker.Neighbors() {
		if !keep[a] {
			if err := b.deleteNeighbor(ctx, a); err != nil {
				return int(b.ops.Load() - before), err
			}
		}
	}
	b.speaker.Resync()
	return int(b.ops.Load() - before), nil
}

func (b *bgpPath) setNeighbor(ctx context.Context, n daemon.Neighbor) error {
	changed, err := b.speaker.SetNeighbor(ctx, n)
	if changed {
		b.ops.Add(1)
	}
	return err
}

func (b *bgpPath) deleteNeighbor(ctx context.Context, addr string) error {
	changed, err := b.speaker.DeleteNeighbor(ctx, addr)
	if changed {
		b.ops.Add(1)
	}
	return err
}

func (b *bgpPath) Peers() (int, int) { return len(b.mesh), len(b.refused) }

// sessionCounter is a datapath with BGP sessions.
type sessionCounter interface {
	Sessions() (configured, established int)
}

// Sessions counts the speaker's sessions; safe to call from any goroutine.
func (b *bgpPath) Sessions() (configured, established int) {
	sp := b.live.Load()
	if sp == nil {
		return 0, 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	up, _ := sp.Established(ctx)
	return len(sp.Neighbors()), up
}
func (b *bgpPath) Ops() int64 { return b.ops.Load() }

// Close abandons the speaker: BGP sessions and kernel routes stay until the process exits (see
// daemon.Abandon), so pods keep their network through an agent restart.
func (b *bgpPath) Close() {
	if b.speaker != nil {
		b.speaker.Abandon()
	}
}
