package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/bgp"
	"github.com/netloom/netloom/pkg/route"
)

// resyncEvery bounds how long a kernel route can stay wrong (removed by hand, say) without an event.
const resyncEvery = 30 * time.Second

// settle batches the burst of path events a session coming up or going down sends into one reconcile.
const settle = 100 * time.Millisecond

// Daemon is a running netloomd.
type Daemon struct {
	cfg *Config
	log *slog.Logger
	srv *server.BgpServer

	cancel context.CancelFunc
	// adoptUntil ends the start-up period in which reconcile keeps the kernel routes it found at start
	// (found) that no path asks for yet; it adds and replaces routes as always.
	found      map[netip.Prefix]bool
	adoptUntil time.Time
	kick       chan struct{}
	installed  atomic.Int64 // routes in the kernel after the last reconcile
	healthy    atomic.Bool
	wg         sync.WaitGroup
	http       *http.Server

	mu         sync.Mutex          // guards the two below, changed at run time by dynamic.go
	neighbors  map[string]Neighbor // by neighborKey
	originated map[netip.Prefix]bool
}

// Start brings the speaker up: the API socket (0600), BGP, the neighbours, the originated prefixes, the
// pods' recorded paths, the kernel route reconcile and the metrics endpoint. Stop undoes it.
func Start(ctx context.Context, cfg *Config, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: log, kick: make(chan struct{}, 1), neighbors: map[string]Neighbor{}, originated: map[netip.Prefix]bool{}}
	ctx, d.cancel = context.WithCancel(ctx)
	if err := prepareSocket(cfg.API.Socket); err != nil {
		return nil, err
	}
	// The gRPC server creates the socket from a goroutine of its own: the process umask keeps it (and
	// every other file netloomd makes) private from the start.
	unix.Umask(0o077)
	d.srv = server.NewBgpServer(server.GrpcListenAddress("unix://"+cfg.API.Socket), server.LoggerOption(&gobgpLogger{log: log}))
	go d.srv.Serve()
	ok := false
	defer func() {
		if !ok {
			d.cancel()
			_ = d.srv.StopBgp(context.Background(), &api.StopBgpRequest{})
		}
	}()
	b := cfg.BGP
	if err := d.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: b.ASN, RouterId: b.RouterID, ListenPort: b.ListenPort, ListenAddresses: b.ListenAddresses,
	}}); err != nil {
		return nil, fmt.Errorf("start BGP: %w", err)
	}
	if err := d.watch(ctx); err != nil {
		return nil, err
	}
	for _, n := range b.Neighbors {
		if _, err := d.SetNeighbor(ctx, n); err != nil {
			return nil, err
		}
	}
	if _, err := d.Originate(ctx, cfg.originate); err != nil {
		return nil, err
	}
	d.restore(ctx)
	if err := waitSocket(cfg.API.Socket, 5*time.Second); err != nil {
		return nil, err
	}
	if cfg.Metrics.Listen != "" {
		if err := d.serveHTTP(cfg.Metrics.Listen); err != nil {
			return nil, err
		}
	}
	d.adoptUntil = time.Now().Add(max(adoptPeriod(b.Neighbors), cfg.AdoptFor))
	d.found = map[netip.Prefix]bool{}
	if left, err := route.ListByProtocol(route.ProtoBGP); err == nil {
		for _, r := range left {
			d.found[r.Dst] = true
		}
	}
	d.wg.Add(2)
	go d.reconcileLoop(ctx)
	go d.watchMD5(ctx)
	d.healthy.Store(true)
	ok = true
	log.Info("netloomd started", "asn", b.ASN, "routerID", b.RouterID, "neighbors", len(b.Neighbors),
		"originate", b.Originate, "socket", cfg.API.Socket)
	return d, nil
}

// Stop withdraws everything: BGP stops (peers see the session close and drop this node's paths), the
// kernel routes netloomd installed are removed, the API socket and the metrics endpoint close.
func (d *Daemon) Stop() error {
	d.healthy.Store(false)
	d.cancel()
	var errs []error
	if err := d.srv.StopBgp(context.Background(), &api.StopBgpRequest{}); err != nil {
		errs = append(errs, fmt.Errorf("stop BGP: %w", err))
	}
	if d.http != nil {
		_ = d.http.Close()
	}
	d.wg.Wait()
	if d.cfg.installRoutes() {
		n, err := removeAllRoutes()
		if err != nil {
			errs = append(errs, err)
		}
		d.log.Info("kernel routes withdrawn", "count", n)
	}
	if err := os.Remove(d.cfg.API.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func peer(n Neighbor) *api.Peer {
	p := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: n.Address, PeerAsn: n.ASN, AuthPassword: n.Password, AllowOwnAsn: n.AllowOwnAS},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: n.HoldTime, KeepaliveInterval: max(1, n.HoldTime/3), ConnectRetry: 1,
		}},
		Transport: &api.Transport{PassiveMode: n.Passive},
	}
	gr := n.GracefulRestart > 0
	if gr {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: n.GracefulRestart}
	}
	for _, any := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
		if !n.carries(any) {
			continue
		}
		afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: bgp.Family(any), Enabled: true}}
		if gr {
			afi.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, afi)
	}
	if n.EBGPMultihop > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: n.EBGPMultihop}
	}
	if n.RouteReflectorClient {
		p.RouteReflector = &api.RouteReflector{RouteReflectorClient: true}
	}
	return p
}

func (d *Daemon) announce(ctx context.Context, a bgp.Announcement) error {
	p, err := a.Path()
	if err != nil {
		return err
	}
	_, err = d.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p})
	return err
}

// restore re-announces the paths bgp-route recorded for this speaker: they lived only in the previous
// process's RIB.
func (d *Daemon) restore(ctx context.Context) {
	records, errs := bgp.AllNetworks(d.cfg.StateDir)
	for _, err := range errs {
		d.log.Warn("skipping a bgp-route record", "error", err)
	}
	n := 0
	for _, r := range records {
		if !d.isMe(r.Speaker) {
			continue
		}
		for _, a := range r.Announcements {
			if err := d.announce(ctx, a); err != nil {
				d.log.Warn("re-announce", "prefix", a.Prefix, "container", r.ContainerID, "error", err)
				continue
			}
			n++
		}
	}
	if n > 0 {
		d.log.Info("re-announced recorded pod paths", "count", n)
	}
}

// isMe tells whether a record's speaker is this daemon's socket.
func (d *Daemon) isMe(speaker string) bool {
	return strings.TrimPrefix(speaker, "unix://") == d.cfg.API.Socket
}

// watch logs session changes and kicks a reconcile on every change of a best path or a session.
func (d *Daemon) watch(ctx context.Context) error {
	return d.srv.WatchEvent(ctx, &api.WatchEventRequest{
		Peer:  &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST}}},
	}, func(r *api.WatchEventResponse) {
		if p := r.GetPeer(); p != nil && p.GetType() == api.WatchEventResponse_PeerEvent_STATE {
			st := p.GetPeer().GetState()
			d.log.Info("neighbour state", "neighbor", st.GetNeighborAddress(), "state", strings.ToLower(strings.TrimPrefix(st.GetSessionState().String(), "SESSION_STATE_")),
				"adminState", strings.ToLower(p.GetPeer().GetState().GetAdminState().String()))
		}
		select {
		case d.kick <- struct{}{}:
		default:
		}
	})
}

func (d *Daemon) reconcileLoop(ctx context.Context) {
	defer d.wg.Done()
	t := time.NewTicker(resyncEvery)
	defer t.Stop()
	adopted := time.NewTimer(time.Until(d.adoptUntil))
	defer adopted.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
			time.Sleep(settle)
		case <-adopted.C: // the start-up period is over: remove what no peer sent again
		case <-t.C:
		}
		if ctx.Err() != nil || !d.cfg.installRoutes() {
			continue
		}
		if err := d.reconcile(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("kernel routes", "error", err)
		}
	}
}

// adoptPeriod is how long after start netloomd keeps kernel routes it finds but has no path for: the
// longest hold time of its neighbours, by which each has either sent its routes or been declared down.
func adoptPeriod(ns []Neighbor) time.Duration {
	var longest uint64
	for _, n := range ns {
		longest = max(longest, n.HoldTime)
	}
	return time.Duration(longest) * time.Second
}

// prepareSocket makes the socket's directory (0700) and removes a socket a previous process left.
func prepareSocket(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("api.socket: %w", err)
	}
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("api.socket: %w", err)
	case st.Mode()&os.ModeSocket == 0:
		return fmt.Errorf("api.socket: %s exists and is not a socket; remove it or choose another path", path)
	}
	return os.Remove(path)
}

// waitSocket waits for the gRPC server to create its socket, then makes sure it is 0600.
func waitSocket(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
			return os.Chmod(path, 0o600)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("api.socket: %s did not appear within %v", path, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
