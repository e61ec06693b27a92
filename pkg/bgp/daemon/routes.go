package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/netloom/netloom/pkg/bgp"
	"github.com/netloom/netloom/pkg/route"
)

// bestRoutes lists the best path of every destination in the RIB that a peer sent (this speaker's own
// paths are not routes to install).
func (d *Daemon) bestRoutes(ctx context.Context) (map[netip.Prefix]netip.Addr, error) {
	want := map[netip.Prefix]netip.Addr{}
	for _, fam := range []*api.Family{bgp.Family(netip.MustParsePrefix("0.0.0.0/0")), bgp.Family(netip.MustParsePrefix("::/0"))} {
		var decodeErr error
		err := d.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(dst *api.Destination) {
			for _, p := range dst.GetPaths() {
				if !p.GetBest() || p.GetIsWithdraw() {
					continue
				}
				r, err := bgp.DecodePath(p)
				if err != nil {
					decodeErr = err
					continue
				}
				if !r.Local && r.NextHop.IsValid() && !r.NextHop.IsUnspecified() {
					want[r.Prefix] = r.NextHop
				}
			}
		})
		if err != nil {
			return nil, fmt.Errorf("list paths: %w", err)
		}
		if decodeErr != nil {
			d.log.Warn("undecodable path", "error", decodeErr)
		}
	}
	return want, nil
}

// reconcile makes the kernel's routes of protocol 79 exactly the best learned paths: missing ones
// added, changed next hops replaced, the rest removed. A next hop the kernel cannot reach is logged
// and skipped, not fatal: the other routes still go in. Until adoptUntil (one hold time after start,
// or Config.AdoptFor) the routes found at start are not removed: those a crashed or restarted netloomd
// left keep the pods' traffic flowing while the sessions come back, and only those no peer announces
// again go. Routes this process installed go as soon as their path does.
func (d *Daemon) reconcile(ctx context.Context) error {
	want, err := d.bestRoutes(ctx)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		// Stopping: a listing cut short by the cancelled context is not "no paths" (the routes would
		// all go, as a netloomd stopped while its peers send nothing new found out).
		return err
	}
	have, err := route.ListByProtocol(route.ProtoBGP)
	if err != nil {
		return err
	}
	var errs []error
	adopting := time.Now().Before(d.adoptUntil)
	for _, h := range have {
		if _, ok := want[h.Dst]; ok {
			delete(d.found, h.Dst) // a path asks for it: from now on it is this process's
		}
		if gw, ok := want[h.Dst]; ok && gw == h.GW {
			delete(want, h.Dst)
			continue
		}
		if _, keep := want[h.Dst]; keep {
			continue // replaced below
		}
		if adopting && d.found[h.Dst] {
			continue // a route a previous netloomd left: kept until the peers had time to send theirs
		}
		if err := route.DelInstalled(h); err != nil {
			errs = append(errs, err)
		} else {
			d.log.Info("route withdrawn", "prefix", h.Dst, "via", h.GW)
		}
	}
	for dst, gw := range want {
		if err := route.Replace(nil, route.Route{Dst: dst, GW: gw, Protocol: route.ProtoBGP}); err != nil {
			errs = append(errs, err)
			continue
		}
		d.log.Info("route installed", "prefix", dst, "via", gw)
	}
	if after, err := route.ListByProtocol(route.ProtoBGP); err == nil {
		d.installed.Store(int64(len(after)))
	}
	return errors.Join(errs...)
}

// removeAllRoutes deletes every route of netloomd's protocol: what Stop leaves behind is nothing.
func removeAllRoutes() (int, error) {
	have, err := route.ListByProtocol(route.ProtoBGP)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, h := range have {
		errs = append(errs, route.DelInstalled(h))
	}
	return len(have), errors.Join(errs...)
}
