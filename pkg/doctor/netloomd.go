package doctor

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/netloom/netloom/pkg/bgp"
)

// NetloomdName is the netloomd check's name.
const NetloomdName = "netloomd"

// DefaultNetloomdStats is where netloomd's cluster agent serves /readyz and /metrics by default
// (pkg/cluster DefaultListen, ":9402").
const DefaultNetloomdStats = "http://127.0.0.1:9402"

// netloomdTimeout bounds each question to netloomd.
const netloomdTimeout = 3 * time.Second

// Netloomd returns the check of netloomd, when it runs: its BGP sessions (through the GoBGP API on
// socket, default bgp.DefaultSocket) and, in cluster mode, its Kubernetes source (through /readyz and
// /metrics at statsURL, default DefaultNetloomdStats). A node without netloomd gets one OK "not
// running". A session that is not established is a Warn, none established a Fail (no pod route is
// announced or learned); a cluster agent that is not ready is a Fail, one whose API server stopped
// answering a Warn (it keeps the routes it has).
func Netloomd(socket, statsURL string) Check {
	c := netloomd{socket: cmp.Or(socket, bgp.DefaultSocket), stats: cmp.Or(statsURL, DefaultNetloomdStats)}
	return Check{Name: NetloomdName, Run: c.run}
}

type netloomd struct{ socket, stats string }

func (c netloomd) run(*Node) []Finding {
	fs := c.sessions()
	cl := c.cluster()
	if fs == nil && cl == nil {
		return []Finding{{Status: OK, Found: "not running (no socket " + c.socket + ", no agent at " + c.stats + ")"}}
	}
	return append(fs, cl...)
}

// sessions reports the BGP sessions; nil when netloomd's socket is not there.
func (c netloomd) sessions() []Finding {
	subject := "bgp " + c.socket
	if _, err := os.Stat(c.socket); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	cl, err := bgp.Dial(c.socket)
	if err != nil {
		return []Finding{{Subject: subject, Status: Unknown, Found: err.Error()}}
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), netloomdTimeout)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return []Finding{{Subject: subject, Status: Fail, Found: "the socket is there but the speaker does not answer: " + err.Error(),
			Fix: "systemctl status netloomd; journalctl -u netloomd"}}
	}
	peers, err := cl.Peers(ctx)
	if err != nil {
		return []Finding{{Subject: subject, Status: Unknown, Found: "list sessions: " + err.Error()}}
	}
	return judgeSessions(subject, peers)
}

// judgeSessions is the sessions' verdict.
func judgeSessions(subject string, peers []bgp.Peer) []Finding {
	if len(peers) == 0 {
		return []Finding{{Subject: subject, Status: OK, Found: "speaker up, no sessions configured"}}
	}
	up := 0
	for _, p := range peers {
		if p.Established {
			up++
		}
	}
	var fs []Finding
	for _, p := range peers {
		f := Finding{Subject: fmt.Sprintf("bgp peer %s AS %d", p.Address, p.ASN), Status: OK, Found: "established"}
		if !p.Established {
			f.Status, f.Found = Warn, "session "+p.State
			f.Fix = fmt.Sprintf("check that %s is reachable on TCP 179 and configured with this node as neighbour", p.Address)
			if up == 0 {
				f.Status = Fail
				f.Found += "; no session is established, so no pod route is exchanged"
			}
		}
		fs = append(fs, f)
	}
	return fs
}

// cluster reports the cluster agent's readiness and its API server; nil when nothing serves statsURL.
func (c netloomd) cluster() []Finding {
	subject := "cluster agent " + c.stats
	client := &http.Client{Timeout: netloomdTimeout}
	resp, err := client.Get(c.stats + "/readyz")
	if err != nil {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	var fs []Finding
	if resp.StatusCode != http.StatusOK {
		fs = append(fs, Finding{Subject: subject, Status: Fail, Found: strings.TrimSpace(string(body)),
			Fix: "journalctl -u netloomd: the agent writes the conflist once it has read this node's Node"})
	} else {
		fs = append(fs, Finding{Subject: subject, Status: OK, Found: "ready"})
	}
	m, err := client.Get(c.stats + "/metrics")
	if err != nil {
		return fs
	}
	defer m.Body.Close()
	if v, ok := metric(m.Body, "netloomd_cluster_apiserver_answers"); ok && v == "0" {
		fs = append(fs, Finding{Subject: subject, Status: Warn, Found: "the Kubernetes API server does not answer its list and watch of Nodes (routes to new nodes wait)",
			Fix: "check the agent's kubeconfig and the API server's reachability from this node"})
	}
	return fs
}

// metric returns the value of the unlabelled metric name in a Prometheus text exposition.
func metric(r io.Reader, name string) (string, bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
