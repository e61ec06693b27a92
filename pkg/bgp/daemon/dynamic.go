package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/netloom/netloom/pkg/bgp"
)

// The methods here change a running speaker: the cluster agent (pkg/cluster) starts netloomd's speaker
// in its own process with no neighbours and keeps them and the originated prefixes in line with the
// cluster's Node objects. Each call changes only what differs; all are safe for concurrent use.

// SetNeighbor makes the speaker have a session with n: it adds one, or replaces the session with n's
// address when its settings differ (the session restarts). n must be valid (ValidateNeighbors).
// changed tells whether anything was done.
func (d *Daemon) SetNeighbor(ctx context.Context, n Neighbor) (changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := neighborKey(n.Address)
	if old, ok := d.neighbors[key]; ok {
		if old.equal(n) {
			return false, nil
		}
		if err := d.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: old.Address}); err != nil {
			return false, fmt.Errorf("neighbour %s: replace: %w", old.Address, err)
		}
		delete(d.neighbors, key)
	}
	if err := d.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer(n)}); err != nil {
		return false, fmt.Errorf("neighbour %s: %w", n.Address, err)
	}
	d.neighbors[key] = n
	d.log.Info("neighbour added", "neighbor", n.Address, "asn", n.ASN)
	return true, nil
}

// DeleteNeighbor ends the session with address, if there is one: the peer's paths leave the RIB and
// the kernel at once (no graceful restart applies to a deconfigured peer).
func (d *Daemon) DeleteNeighbor(ctx context.Context, address string) (changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := neighborKey(address)
	old, ok := d.neighbors[key]
	if !ok {
		return false, nil
	}
	if err := d.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: old.Address}); err != nil {
		return false, fmt.Errorf("neighbour %s: delete: %w", old.Address, err)
	}
	delete(d.neighbors, key)
	d.kickReconcile()
	d.log.Info("neighbour deleted", "neighbor", old.Address)
	return true, nil
}

// Neighbors lists the addresses of the configured sessions.
func (d *Daemon) Neighbors() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.neighbors))
	for _, n := range d.neighbors {
		out = append(out, n.Address)
	}
	slices.Sort(out)
	return out
}

// Established counts the sessions that are up.
func (d *Daemon) Established(ctx context.Context) (int, error) {
	up := 0
	err := d.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetState().GetSessionState() == api.PeerState_ESTABLISHED {
			up++
		}
	})
	return up, err
}

// Originate makes the prefixes this node originates exactly prefixes: new ones announced, others
// withdrawn. It returns how many paths it changed.
func (d *Daemon) Originate(ctx context.Context, prefixes []netip.Prefix) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		want[p] = true
	}
	changes := 0
	for p := range d.originated {
		if want[p] {
			continue
		}
		if err := d.withdraw(ctx, bgp.Announcement{Prefix: p}); err != nil {
			return changes, fmt.Errorf("withdraw %s: %w", p, err)
		}
		delete(d.originated, p)
		changes++
	}
	for p := range want {
		if d.originated[p] {
			continue
		}
		if err := d.announce(ctx, bgp.Announcement{Prefix: p}); err != nil {
			return changes, fmt.Errorf("originate %s: %w", p, err)
		}
		d.originated[p] = true
		changes++
	}
	return changes, nil
}

// Resync makes the speaker check the kernel's routes against its best paths now, rather than at its
// next timer (a route deleted by hand comes back at once).
func (d *Daemon) Resync() { d.kickReconcile() }

// Abandon stops the daemon's own goroutines and its metrics endpoint but leaves BGP and the kernel
// routes as they are, for a process about to exit that wants its datapath kept: the sessions end with
// the process's sockets, without a Cease, so peers that negotiated graceful restart keep this node's
// routes (stale) for the restart time, and the next speaker adopts the kernel routes it finds.
func (d *Daemon) Abandon() {
	d.healthy.Store(false)
	d.cancel()
	if d.http != nil {
		_ = d.http.Close()
	}
	d.wg.Wait()
}

func (d *Daemon) withdraw(ctx context.Context, a bgp.Announcement) error {
	p, err := a.Path()
	if err != nil {
		return err
	}
	err = d.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p})
	if err != nil && strings.Contains(err.Error(), "can't find") {
		return nil
	}
	return err
}

func (d *Daemon) kickReconcile() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// neighborKey is the map key of a neighbour's address (::ffff:10.0.0.2 and 10.0.0.2 are one peer).
func neighborKey(address string) string {
	if a, err := netip.ParseAddr(address); err == nil {
		return a.Unmap().String()
	}
	return address
}

func (n Neighbor) equal(o Neighbor) bool {
	return n.Address == o.Address && n.ASN == o.ASN && n.Password == o.Password && n.EBGPMultihop == o.EBGPMultihop &&
		n.HoldTime == o.HoldTime && n.Passive == o.Passive && n.RouteReflectorClient == o.RouteReflectorClient &&
		n.GracefulRestart == o.GracefulRestart && n.AllowOwnAS == o.AllowOwnAS && slices.Equal(n.AddressFamilies, o.AddressFamilies)
}
