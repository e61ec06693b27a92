package doctor

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/bgp"
)

func TestJudgeSessions(t *testing.T) {
	up := bgp.Peer{Address: "10.0.0.1", ASN: 65000, State: "established", Established: true}
	down := bgp.Peer{Address: "10.0.0.2", ASN: 65000, State: "active"}
	if fs := judgeSessions("s", []bgp.Peer{up, down}); len(fs) != 2 || fs[0].Status != OK || fs[1].Status != Warn {
		t.Errorf("one down: %+v", fs)
	}
	if fs := judgeSessions("s", []bgp.Peer{down}); len(fs) != 1 || fs[0].Status != Fail {
		t.Errorf("all down: %+v", fs)
	}
	if fs := judgeSessions("s", nil); len(fs) != 1 || fs[0].Status != OK {
		t.Errorf("none: %+v", fs)
	}
}

func TestMetric(t *testing.T) {
	text := "# HELP netloomd_cluster_apiserver_answers x\nnetloomd_cluster_apiserver_answers_total 5\nnetloomd_cluster_apiserver_answers 0\n"
	if v, ok := metric(strings.NewReader(text), "netloomd_cluster_apiserver_answers"); !ok || v != "0" {
		t.Errorf("got %q %v", v, ok)
	}
}

func TestNetloomdNotRunning(t *testing.T) {
	c := Netloomd(t.TempDir()+"/none.sock", "http://127.0.0.1:1")
	fs := c.Run(&Node{})
	if len(fs) != 1 || fs[0].Status != OK || !strings.Contains(fs[0].Found, "not running") {
		t.Errorf("%+v", fs)
	}
}

// Without the runtime's cache nothing tells a live pod's lease from a gone one's: the check says it
// cannot tell, and Fix refuses the GC that would release every lease.

func TestNetloomdClusterAgent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ready   int
		answers string
		want    []Status
	}{
		{"ready", http.StatusOK, "1", []Status{OK}},
		{"not ready", http.StatusServiceUnavailable, "1", []Status{Fail}},
		{"api server gone", http.StatusOK, "0", []Status{OK, Warn}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/readyz":
					w.WriteHeader(tc.ready)
					fmt.Fprintln(w, "not ready: no pod CIDR")
				case "/metrics":
					fmt.Fprintf(w, "netloomd_cluster_apiserver_answers %s\n", tc.answers)
				}
			}))
			defer srv.Close()
			fs := Netloomd(t.TempDir()+"/none.sock", srv.URL).Run(&Node{})
			var got []Status
			for _, f := range fs {
				got = append(got, f.Status)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %+v, want %v", fs, tc.want)
			}
		})
	}
}
