package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	watchpkg "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// What the agent knows of the API server (stats.api).
const (
	apiUnknown int32 = iota // nothing asked yet
	apiAnswers              // the last list or watch of Nodes got an answer
	apiFailing              // it did not
)

// While the API server is away (stopped, restarting, unreachable) the agent keeps what it last knew
// and asks again every apiRetryFirst, doubling up to apiRetryMax, each wait stretched by up to half
// (apiRetryJitter) so that a cluster's agents do not come back in step. client-go's reflector would
// back off to 30 s, and with its jitter up to 60 s: after a ten-second outage the agents caught up
// 20 to 32 s after the API server was back (TestClusterAPIServerRestart). A refused connection costs
// the API server nothing, and while it starts it answers 503 or 429 before it serves.
const (
	apiRetryFirst  = 200 * time.Millisecond
	apiRetryMax    = 3 * time.Second
	apiRetryJitter = 0.5
)

// nodesPath is what the agent lists and watches.
const nodesPath = "/api/v1/nodes"

// apiRetry is the backoff of one list or watch call that finds no API server.
func apiRetry() wait.Backoff {
	return wait.Backoff{Duration: apiRetryFirst, Factor: 2, Jitter: apiRetryJitter, Steps: 1 << 30, Cap: apiRetryMax}
}

// apiUnreachable tells an error that means no API server answered (refused, reset, EOF, a timeout, a
// TLS handshake cut short) or that it, or a proxy in front of it, does not serve yet (5xx) from an
// answer the reflector must see: 403 (RBAC), 410 (relist), 429 (it sheds load: the reflector's
// longer backoff is what it asks for). A cancelled context is neither.
func apiUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Code >= http.StatusInternalServerError
	}
	return true
}

// retryUnreachable calls call until it succeeds, fails with an error apiUnreachable refuses, or ctx
// ends, sleeping between attempts as backoff says (sleep is time.Sleep's stand-in for tests).
func retryUnreachable[T any](ctx context.Context, backoff wait.Backoff, sleep func(context.Context, time.Duration) error, call func() (T, error)) (T, error) {
	for {
		v, err := call()
		if !apiUnreachable(err) {
			return v, err
		}
		if serr := sleep(ctx, backoff.Step()); serr != nil {
			return v, err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// nodesListWatch wraps lw, the list and watch of Nodes, for the informer: a call that finds no API
// server is retried here (apiRetry) instead of handed to the reflector's slower backoff.
func nodesListWatch(lw *cache.ListWatch) *cache.ListWatch {
	list, watch := lw.ListWithContextFunc, lw.WatchFuncWithContext
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return retryUnreachable(ctx, apiRetry(), sleepCtx, func() (runtime.Object, error) { return list(ctx, o) })
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watchpkg.Interface, error) {
			return retryUnreachable(ctx, apiRetry(), sleepCtx, func() (watchpkg.Interface, error) { return watch(ctx, o) })
		},
	}
}

// apiWatcher counts the requests that list or watch Nodes and fail, and logs the first failure after
// a success and the recovery. It sits in the HTTP transport because client-go hides some failures
// from the informer: a watch whose connection ends at once (EOF, as through a load balancer with no
// API server behind it) is retried by its REST client ten times, once a second, and then handed over
// as an empty watch, without an error.
type apiWatcher struct {
	next  http.RoundTripper
	log   *slog.Logger
	stats *stats
}

func (w *apiWatcher) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.next.RoundTrip(req)
	if req.Method != http.MethodGet || req.URL.Path != nodesPath {
		return resp, err
	}
	var failure error
	switch {
	case err != nil:
		failure = err
	case resp.StatusCode >= 400 && resp.StatusCode != http.StatusGone: // 410: relist, part of the protocol
		failure = errors.New(resp.Status)
	}
	switch {
	case failure != nil && req.Context().Err() != nil:
		// the agent is stopping
	case failure != nil:
		w.stats.watchErrors.Add(1)
		if w.stats.api.Swap(apiFailing) != apiFailing {
			what := "list"
			if req.URL.Query().Get("watch") == "true" {
				what = "watch"
			}
			w.log.Warn("cannot "+what+" Nodes; keeping the current routes and retrying", "error", failure)
		}
	default:
		if w.stats.api.Swap(apiAnswers) == apiFailing {
			w.log.Info("the API server answers again; catching up")
		}
	}
	return resp, err
}
