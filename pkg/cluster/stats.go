package cluster

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stats is what /healthz, /readyz and /metrics report.
type stats struct {
	synced   atomic.Bool // the first full resync is done
	podCIDRs atomic.Bool // this node has pod CIDRs

	mu       sync.Mutex
	notReady string // "" when ready

	reconciles, reconcileErrors atomic.Int64
	reconcileNanos              atomic.Int64
	conflistWrites, watchErrors atomic.Int64
	masqWrites, masqRules       atomic.Int64
	// peersRouted and peersRefused are the datapath's counts after the last work item: the worker
	// writes them, the metrics handler reads them (the datapath's own maps are the worker's alone).
	peersRouted, peersRefused atomic.Int64
	api                       atomic.Int32 // apiUnknown, apiAnswers or apiFailing
}

// setNotReady records why the agent is not ready; it reports whether the reason changed.
func (s *stats) setNotReady(reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.notReady != reason
	s.notReady = reason
	return changed
}

func (s *stats) setReady() { s.setNotReady("") }

func (s *stats) readiness() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notReady
}

func (s *stats) observe(d time.Duration, err error) {
	s.reconciles.Add(1)
	s.reconcileNanos.Add(int64(d))
	if err != nil {
		s.reconcileErrors.Add(1)
	}
}

// serve starts the HTTP server on addr: /healthz (the process serves), /readyz (200 once the conflist
// is written and the first resync is done; 503 with the reason before), /metrics (Prometheus text).
func (s *stats) serve(addr string, r datapath) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := s.readiness(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(s.metrics(r)))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}

func (s *stats) metrics(r datapath) string {
	var b strings.Builder
	metric := func(name, typ, help string, value any, labels ...string) {
		if help != "" {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		}
		l := ""
		if len(labels) > 0 {
			l = "{" + strings.Join(labels, ",") + "}"
		}
		fmt.Fprintf(&b, "%s%s %v\n", name, l, value)
	}
	b2i := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	routed, refused := s.peersRouted.Load(), s.peersRefused.Load()
	metric("netloomd_cluster_ready", "gauge", "1 once the conflist is written and the first resync is done.", b2i(s.readiness() == ""))
	metric("netloomd_cluster_pod_cidrs_assigned", "gauge", "1 when this node's Node has spec.podCIDRs.", b2i(s.podCIDRs.Load()))
	metric("netloomd_cluster_peers", "gauge", "Other nodes, by whether their pod CIDRs are routed or refused.", routed, `state="routed"`)
	metric("netloomd_cluster_peers", "gauge", "", refused, `state="refused"`)
	metric("netloomd_cluster_reconciles_total", "counter", "Work items handled (one Node, or a full resync).", s.reconciles.Load())
	metric("netloomd_cluster_reconcile_errors_total", "counter", "Work items that failed (retried with backoff).", s.reconcileErrors.Load())
	metric("netloomd_cluster_reconcile_seconds_total", "counter", "Time spent handling work items.", float64(s.reconcileNanos.Load())/1e9)
	metric("netloomd_cluster_route_changes_total", "counter", "Kernel route replacements and deletions made.", r.Ops())
	metric("netloomd_cluster_conflist_writes_total", "counter", "Times the conflist was (re)written.", s.conflistWrites.Load())
	metric("netloomd_cluster_masquerade_rules", "gauge", "Rules of the masquerade table (one per pod CIDR masqueraded; 0: no table).", s.masqRules.Load())
	metric("netloomd_cluster_masquerade_writes_total", "counter", "Times the masquerade table was written or deleted because it differed from what it should be.", s.masqWrites.Load())
	metric("netloomd_cluster_watch_errors_total", "counter", "Failed requests to list or watch Nodes (each retried; client-go retries some itself).", s.watchErrors.Load())
	metric("netloomd_cluster_apiserver_answers", "gauge", "1 when the last request to list or watch Nodes got an answer, 0 while they fail.", b2i(s.api.Load() == apiAnswers))
	if sc, ok := r.(sessionCounter); ok {
		configured, established := sc.Sessions()
		metric("netloomd_cluster_bgp_sessions", "gauge", "BGP sessions of bgp mode's speaker (the node mesh and the routers), configured and established.", configured, `state="configured"`)
		metric("netloomd_cluster_bgp_sessions", "gauge", "", established, `state="established"`)
	}
	return b.String()
}
