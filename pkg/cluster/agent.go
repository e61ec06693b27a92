package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/netloom/netloom/pkg/overlay"
)

// resyncKey is the work item of a full resync; no Node can have this name.
const resyncKey = "\x00resync"

// Agent is one node's cluster agent. Every change to the kernel and the conflist is made by one
// worker goroutine, from a queue of Node names (and full resyncs): a Node event changes only that
// node's routes; a failed item is retried with backoff.
type Agent struct {
	cfg      *Config
	log      *slog.Logger
	client   *NodeClient
	nodeName string
	dp       datapath

	queue  workqueue.TypedRateLimitingInterface[string]
	lister corelisters.NodeLister

	self      Node            // this node as last written to the conflist
	peers     map[string]Node // as last applied
	masqNotes string          // why pod CIDRs are not masqueraded, as last logged
	stats     stats
}

// New returns the agent for the node called nodeName, talking to the API server rc describes through
// a Nodes-only client (NewNodeClient) whose transport counts failed lists and watches (apiWatcher).
func New(cfg *Config, rc *rest.Config, nodeName string, log *slog.Logger) (*Agent, error) {
	a := &Agent{
		cfg:      cfg,
		log:      log,
		nodeName: nodeName,
		dp:       newDatapath(cfg, log),
		peers:    map[string]Node{},
	}
	rc = rest.CopyConfig(rc)
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &apiWatcher{next: rt, log: log, stats: &a.stats} })
	client, err := NewNodeClient(rc)
	if err != nil {
		return nil, err
	}
	a.client = client
	a.stats.setNotReady("waiting for the list of Nodes from the API server")
	return a, nil
}

// Run watches the Nodes and reconciles until ctx ends. It never removes the datapath or the conflist:
// on return (SIGTERM, an upgrade) pods keep their network, and while the API server cannot be reached
// the agent keeps what it last knew and resyncs when the watch comes back.
func (a *Agent) Run(ctx context.Context) error {
	a.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodes"})
	defer a.queue.ShutDown()

	inf := cache.NewSharedIndexInformer(nodesListWatch(a.client.listWatch()), &corev1.Node{}, 0, cache.Indexers{})
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    a.enqueue,
		UpdateFunc: func(_, n any) { a.enqueue(n) },
		DeleteFunc: a.enqueue,
	}); err != nil {
		return err
	}
	a.lister = corelisters.NewNodeLister(inf.GetIndexer())

	defer a.dp.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	if srv, err := a.serveHTTP(); err != nil {
		return err
	} else if srv != nil {
		wg.Go(func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
	}

	wg.Go(func() { inf.RunWithContext(ctx) })
	a.log.Info("waiting for the Node list", "node", a.nodeName, "mode", a.cfg.Mode)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}
	a.queue.Add(resyncKey)
	wg.Go(func() {
		t := time.NewTicker(a.cfg.Resync())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				a.queue.ShutDown()
				return
			case <-t.C:
				a.queue.Add(resyncKey)
			}
		}
	})
	for a.processNext(ctx) {
	}
	a.log.Info("stopped; routes and conflist left in place")
	return nil
}

func (a *Agent) enqueue(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if n, ok := obj.(*corev1.Node); ok {
		a.queue.Add(n.Name)
	}
}

func (a *Agent) processNext(ctx context.Context) bool {
	key, quit := a.queue.Get()
	if quit {
		return false
	}
	defer a.queue.Done(key)
	start := time.Now()
	err := a.handle(ctx, key)
	a.stats.observe(time.Since(start), err)
	routed, refused := a.dp.Peers()
	a.stats.peersRouted.Store(int64(routed))
	a.stats.peersRefused.Store(int64(refused))
	if err != nil {
		what := key
		if key == resyncKey {
			what = "full resync"
		}
		a.log.Error("reconcile failed; retrying", "item", what, "error", err)
		a.queue.AddRateLimited(key)
		return true
	}
	a.queue.Forget(key)
	return true
}

func (a *Agent) handle(ctx context.Context, key string) error {
	if key == resyncKey {
		return a.resync(ctx)
	}
	obj, err := a.lister.Get(key)
	if apierrors.IsNotFound(err) {
		if key == a.nodeName {
			a.log.Warn("this node's Node object is gone; keeping its conflist and routes")
			return nil
		}
		if _, known := a.peers[key]; known {
			a.log.Info("peer deleted", "node", key)
		}
		delete(a.peers, key)
		return a.dp.Remove(key)
	}
	if err != nil {
		return err
	}
	n, err := NodeFrom(obj)
	if key == a.nodeName {
		if err != nil {
			return err
		}
		return a.syncSelf(ctx, n)
	}
	if err != nil {
		a.log.Warn("peer left out", "node", key, "error", err)
		delete(a.peers, key)
		return a.dp.Remove(key)
	}
	return a.syncPeer(n)
}

// syncSelf writes the conflist from this node's pod CIDRs and publishes the node's annotations; a
// change of the pod CIDRs is followed by a full resync (peers are checked against them).
func (a *Agent) syncSelf(ctx context.Context, n Node) error {
	if len(n.PodCIDRs) == 0 {
		a.stats.podCIDRs.Store(false)
		reason := fmt.Sprintf("Node %s has no spec.podCIDRs yet (the controller-manager's --allocate-node-cidrs, or kubeadm's --pod-network-cidr, assigns them); not writing a conflist", n.Name)
		if a.stats.setNotReady(reason) {
			a.log.Warn("waiting for this node's pod CIDRs", "node", n.Name)
		}
		return nil
	}
	a.stats.podCIDRs.Store(true)
	changedCIDRs := !slices.Equal(a.self.PodCIDRs, n.PodCIDRs)
	if err := a.dp.SetSelf(n); err != nil {
		return err
	}
	data, err := RenderConflist(a.cfg, n)
	if err != nil {
		return err
	}
	written, err := WriteIfChanged(a.cfg.ConflistPath(), data, 0o644)
	if err != nil {
		return fmt.Errorf("conflist: %w", err)
	}
	if written {
		a.stats.conflistWrites.Add(1)
		a.log.Info("wrote the conflist", "path", a.cfg.ConflistPath(), "podCIDRs", fmt.Sprint(n.PodCIDRs))
	}
	if err := a.syncMasquerade(n); err != nil {
		return err
	}
	if err := a.annotateSelf(ctx, n); err != nil {
		return err
	}
	a.self = n
	if changedCIDRs && a.stats.synced.Load() {
		a.queue.Add(resyncKey)
	}
	if a.stats.synced.Load() {
		a.stats.setReady()
	}
	return nil
}

// syncMasquerade makes the masquerade table what this node's pod CIDRs need: in routed mode with
// masquerade on, one rule per family (bgp mode too: its pods sit on the same bridge); otherwise no
// table (the vxlan and ipip modes masquerade in the overlay plugin). Called on every look at this node, resyncs included, it repairs a table edited or deleted by
// hand and writes nothing when the kernel already matches.
func (a *Agent) syncMasquerade(n Node) error {
	on := (a.cfg.Mode == ModeRouted || a.cfg.Mode == ModeBGP) && a.cfg.Masquerades()
	ch, err := ensureMasquerade(on, n.PodCIDRs, a.cfg.clusterCIDRs)
	if notes := strings.Join(ch.Notes, "; "); notes != a.masqNotes {
		a.masqNotes = notes
		if notes != "" {
			a.log.Warn("not masqueraded", "reasons", ch.Notes)
		}
	}
	if err != nil {
		return fmt.Errorf("masquerade: %w", err)
	}
	a.stats.masqRules.Store(int64(ch.Rules))
	if ch.Reason != "" {
		a.stats.masqWrites.Add(1)
		a.log.Info("wrote the masquerade table", "table", "inet "+MasqTable, "rules", ch.Rules, "reason", ch.Reason)
	}
	return nil
}

// annotateSelf patches this node's netloom.io/ annotations when they differ from what its peers need
// to know: only this node's own Node, only those keys.
func (a *Agent) annotateSelf(ctx context.Context, n Node) error {
	want := map[string]string{AnnotationMode: a.cfg.Mode}
	if a.cfg.Mode != ModeRouted {
		if pod, ip, ok := n.v4(); ok {
			want[AnnotationTunnelIP] = pod.Addr().String()
			if a.cfg.Mode == ModeVXLAN {
				want[AnnotationVTEPMAC] = overlay.VTEPMAC(ip).String()
			}
		}
	}
	if maps.Equal(filter(n.Annotations, want), want) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.client.patchAnnotations(ctx, n.Name, want); err != nil {
		return fmt.Errorf("annotate Node %s: %w", n.Name, err)
	}
	return nil
}

func filter(have, keys map[string]string) map[string]string {
	out := map[string]string{}
	for k := range keys {
		if v, ok := have[k]; ok {
			out[k] = v
		}
	}
	return out
}

// syncPeer changes the kernel for one peer, when what its Node asks of the datapath changed.
func (a *Agent) syncPeer(n Node) error {
	if old, ok := a.peers[n.Name]; ok && old.Equal(n) {
		return nil
	}
	if err := a.dp.Apply(n); err != nil {
		return err
	}
	a.peers[n.Name] = n
	a.log.Debug("peer reconciled", "node", n.Name, "podCIDRs", fmt.Sprint(n.PodCIDRs), "internalIPs", fmt.Sprint(n.InternalIPs))
	return nil
}

// resync reads every Node from the informer's cache, writes the conflist (fixing a file someone
// changed or removed) and makes the kernel's routes exactly the peers' (fixing drift).
func (a *Agent) resync(ctx context.Context) error {
	all, err := a.lister.List(labels.Everything())
	if err != nil {
		return err
	}
	start := time.Now()
	var peers []Node
	var errs []error
	selfSeen := false
	for _, obj := range all {
		n, err := NodeFrom(obj)
		if obj.Name == a.nodeName {
			selfSeen = true
			if err == nil {
				err = a.syncSelf(ctx, n)
			}
			errs = append(errs, err)
			continue
		}
		if err != nil {
			a.log.Warn("peer left out", "node", obj.Name, "error", err)
			continue
		}
		peers = append(peers, n)
	}
	if !selfSeen {
		a.stats.setNotReady(fmt.Sprintf("no Node called %s (set NODE_NAME or --node-name to this node's Node name)", a.nodeName))
		a.log.Warn("this node's Node object does not exist", "node", a.nodeName)
	}
	changes, err := a.dp.Resync(peers)
	errs = append(errs, err)
	a.peers = map[string]Node{}
	for _, n := range peers {
		a.peers[n.Name] = n
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	first := !a.stats.synced.Swap(true)
	routed, refused := a.dp.Peers()
	a.log.Info("resync done", "peers", len(peers), "routed", routed, "refused", refused, "routeChanges", changes, "took", time.Since(start).Round(time.Millisecond).String(), "first", first)
	if selfSeen && a.stats.podCIDRs.Load() {
		a.stats.setReady()
	}
	return nil
}

// serveHTTP starts the health and metrics server unless it is turned off.
func (a *Agent) serveHTTP() (*http.Server, error) {
	if a.cfg.Listen == "off" {
		return nil, nil
	}
	return a.stats.serve(a.cfg.Listen, a.dp)
}
