package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestAPIUnreachable(t *testing.T) {
	nodes := schema.GroupResource{Resource: "nodes"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused", fmt.Errorf("Get %q: dial tcp: %w", "https://127.0.0.1:6443/api/v1/nodes", syscall.ECONNREFUSED), true},
		{"EOF", io.EOF, true},
		{"reset", syscall.ECONNRESET, true},
		{"503 while starting", apierrors.NewServiceUnavailable("not ready"), true},
		{"500", apierrors.NewInternalError(errors.New("etcd")), true},
		{"504", apierrors.NewTimeoutError("slow", 1), true},
		{"403 RBAC", apierrors.NewForbidden(nodes, "", errors.New("no")), false},
		{"410 relist", apierrors.NewResourceExpired("too old"), false},
		{"429 load shed", apierrors.NewTooManyRequests("busy", 1), false},
		{"cancelled", context.Canceled, false},
		{"cancelled, wrapped", fmt.Errorf("watch: %w", context.Canceled), false},
	} {
		if got := apiUnreachable(tc.err); got != tc.want {
			t.Errorf("%s: apiUnreachable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestRetryUnreachable: a call that finds no API server is retried with apiRetry's delays, capped
// (never the reflector's 30 to 60 s), until it answers; an answer that is an error goes back at once.
func TestRetryUnreachable(t *testing.T) {
	refused := fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)
	run := func(ctx context.Context, errs ...error) (calls int, slept []time.Duration, err error) {
		sleep := func(ctx context.Context, d time.Duration) error { slept = append(slept, d); return ctx.Err() }
		_, err = retryUnreachable(ctx, apiRetry(), sleep, func() (int, error) {
			calls++
			if calls <= len(errs) {
				return 0, errs[calls-1]
			}
			return 1, nil
		})
		return calls, slept, err
	}

	// A minute of refusals at the cap: every wait between apiRetryFirst and apiRetryMax*(1+jitter).
	var errs []error
	for range 30 {
		errs = append(errs, refused)
	}
	calls, slept, err := run(context.Background(), errs...)
	if err != nil || calls != 31 || len(slept) != 30 {
		t.Fatalf("30 refusals then an answer: %d calls, %d waits, %v; want 31, 30, nil", calls, len(slept), err)
	}
	maxWait := time.Duration(float64(apiRetryMax) * (1 + apiRetryJitter))
	for i, d := range slept {
		if d < apiRetryFirst || d > maxWait {
			t.Errorf("wait %d: %s, want within [%s, %s]", i, d, apiRetryFirst, maxWait)
		}
	}
	if slept[0] > time.Duration(float64(apiRetryFirst)*(1+apiRetryJitter)) {
		t.Errorf("first wait %s, want apiRetryFirst (%s) with at most its jitter", slept[0], apiRetryFirst)
	}
	if last := slept[len(slept)-1]; last < apiRetryMax {
		t.Errorf("waits did not grow to the cap: last %s", last)
	}

	// The API server answers with an error: the reflector gets it.
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", errors.New("no"))
	calls, slept, err = run(context.Background(), refused, forbidden)
	if calls != 2 || len(slept) != 1 || !apierrors.IsForbidden(err) {
		t.Errorf("refused then 403: %d calls, %d waits, %v; want 2, 1, the 403", calls, len(slept), err)
	}

	// The agent stops: no more attempts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls, _, err = run(ctx, refused, refused, refused)
	if calls != 1 || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("cancelled: %d calls, %v; want 1 and the refusal", calls, err)
	}
}

// fakeRT answers every request with the next of its results.
type fakeRT struct {
	results []any // an error or a status code
}

func (f *fakeRT) RoundTrip(req *http.Request) (*http.Response, error) {
	r := f.results[0]
	f.results = f.results[1:]
	if err, ok := r.(error); ok {
		return nil, err
	}
	code := r.(int)
	return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

// TestAPIWatcher: failed lists and watches of Nodes are counted one by one, even those client-go's
// REST client retries itself (its EOF retries never reach the informer); the agent's other requests
// and a 410 are not failures; the log says once that it cannot reach the API server and once that
// it answers again.
func TestAPIWatcher(t *testing.T) {
	var logs strings.Builder
	var st stats
	rt := &fakeRT{}
	w := &apiWatcher{next: rt, log: slog.New(slog.NewTextHandler(&logs, nil)), stats: &st}
	get := func(url string, result any) {
		t.Helper()
		rt.results = append(rt.results, result)
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if resp, _ := w.RoundTrip(req); resp != nil {
			resp.Body.Close()
		}
	}
	const watch = "https://127.0.0.1:6443/api/v1/nodes?resourceVersion=9&watch=true"
	const list = "https://127.0.0.1:6443/api/v1/nodes?limit=500"

	get(list, 200)
	get(watch, 200)
	if st.watchErrors.Load() != 0 || st.api.Load() != apiAnswers || logs.Len() != 0 {
		t.Fatalf("healthy: %d errors, state %d, log %q", st.watchErrors.Load(), st.api.Load(), logs.String())
	}
	for range 10 {
		get(watch, io.EOF)
	}
	get(list, syscall.ECONNREFUSED)
	get(list, 503)
	get(list, 403)
	get("https://127.0.0.1:6443/api/v1/nodes/node-0", syscall.ECONNREFUSED) // the agent's own Node: not a list
	if got := st.watchErrors.Load(); got != 13 {
		t.Errorf("%d failures counted, want 13", got)
	}
	if st.api.Load() != apiFailing {
		t.Errorf("state %d during the outage, want apiFailing", st.api.Load())
	}
	get(list, 410)
	get(watch, 200)
	if st.api.Load() != apiAnswers || st.watchErrors.Load() != 13 {
		t.Errorf("after: state %d, %d failures", st.api.Load(), st.watchErrors.Load())
	}
	if n := strings.Count(logs.String(), "cannot watch Nodes"); n != 1 {
		t.Errorf("%d warnings, want one:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "answers again"); n != 1 {
		t.Errorf("%d recoveries logged, want one:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "EOF") {
		t.Errorf("the warning does not say why:\n%s", logs.String())
	}
}
