package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// serveHTTP serves /metrics (Prometheus text format) and /healthz on addr.
func (d *Daemon) serveHTTP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", d.metrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !d.healthy.Load() {
			http.Error(w, "not running", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	d.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = d.http.Serve(ln)
	}()
	return nil
}

func (d *Daemon) metrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var b strings.Builder
	b.WriteString("# HELP netloomd_bgp_session_up Whether the BGP session with the neighbour is established.\n# TYPE netloomd_bgp_session_up gauge\n")
	var rx, tx strings.Builder
	rx.WriteString("# HELP netloomd_bgp_prefixes_received Prefixes received from the neighbour.\n# TYPE netloomd_bgp_prefixes_received gauge\n")
	tx.WriteString("# HELP netloomd_bgp_prefixes_advertised Prefixes advertised to the neighbour.\n# TYPE netloomd_bgp_prefixes_advertised gauge\n")
	err := d.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		nb := p.GetConf().GetNeighborAddress()
		up := 0
		if p.GetState().GetSessionState() == api.PeerState_ESTABLISHED {
			up = 1
		}
		fmt.Fprintf(&b, "netloomd_bgp_session_up{neighbor=%q} %d\n", nb, up)
		for _, af := range p.GetAfiSafis() {
			st := af.GetState()
			fam := strings.ToLower(st.GetFamily().GetAfi().String() + "_" + st.GetFamily().GetSafi().String())
			fmt.Fprintf(&rx, "netloomd_bgp_prefixes_received{neighbor=%q,family=%q} %d\n", nb, fam, st.GetReceived())
			fmt.Fprintf(&tx, "netloomd_bgp_prefixes_advertised{neighbor=%q,family=%q} %d\n", nb, fam, st.GetAdvertised())
		}
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b.WriteString(rx.String())
	b.WriteString(tx.String())
	fmt.Fprintf(&b, "# HELP netloomd_routes_installed Routes netloomd holds in the kernel (protocol 79).\n# TYPE netloomd_routes_installed gauge\nnetloomd_routes_installed %d\n", d.installed.Load())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}
