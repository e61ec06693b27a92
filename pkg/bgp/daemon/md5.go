package daemon

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// md5Every is how often netloomd looks at the kernel's TCP MD5 counters.
const md5Every = 2 * time.Second

// md5Counters are the TcpExt counters the kernel bumps when it drops a BGP segment over its TCP MD5
// signature (RFC 2385): a wrong or missing key on one side drops every segment silently, so neither
// speaker ever sees the session fail; these counters are the only trace.
var md5Counters = []string{"TCPMD5Failure", "TCPMD5NotFound", "TCPMD5Unexpected"}

// watchMD5 logs, whenever those counters grow, which neighbours are down, naming the likely cause.
func (d *Daemon) watchMD5(ctx context.Context) {
	defer d.wg.Done()
	last := readTCPExt()
	t := time.NewTicker(md5Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := readTCPExt()
		grew := map[string]uint64{}
		for _, k := range md5Counters {
			if now[k] > last[k] {
				grew[k] = now[k] - last[k]
			}
		}
		last = now
		if len(grew) == 0 {
			continue
		}
		_ = d.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.GetState().GetSessionState() == api.PeerState_ESTABLISHED {
				return
			}
			hint := "the peer's TCP MD5 password differs from this neighbour's \"password\""
			switch {
			case p.GetConf().GetAuthPassword() == "" && grew["TCPMD5Unexpected"] > 0:
				hint = "the peer signs its segments with TCP MD5 but this neighbour has no \"password\""
			case grew["TCPMD5NotFound"] > 0 && grew["TCPMD5Failure"] == 0:
				hint = "this neighbour has a \"password\" but the peer sends no TCP MD5 signature"
			}
			args := []any{"neighbor", p.GetConf().GetNeighborAddress(), "hint", hint}
			for k, v := range grew {
				args = append(args, k, v)
			}
			d.log.Warn("session down: the kernel drops BGP segments over their TCP MD5 signature", args...)
		})
	}
}

// readTCPExt returns the TcpExt counters of the calling thread's network namespace.
func readTCPExt() map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open("/proc/net/netstat")
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	var names []string
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 0 || fields[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = fields[1:]
			continue
		}
		for i, v := range fields[1:] {
			if i < len(names) {
				out[names[i]], _ = strconv.ParseUint(v, 10, 64)
			}
		}
		break
	}
	return out
}
