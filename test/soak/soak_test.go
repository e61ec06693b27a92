// Package soak runs pods through bridge + host-local + portmap for many ADD/DEL cycles at random
// concurrency, through libcni as a runtime does, and then asserts the node is as it was: no errors,
// no links, pod namespaces, lease files, rules, live conntrack flows, libcni cache entries or file
// descriptors left behind. Run as root:
//
//	CGO_ENABLED=0 go build -trimpath -o /tmp/nlbin/ ./plugins/... ./cmd/...
//	NETLOOM_BIN=/tmp/nlbin go test -count=1 -v ./test/soak/
//
// Environment:
//
//	NETLOOM_SOAK_CYCLES  batches of 1..32 pods (default 60: the pass inside `make test`; a long soak sets 2000)
//	NETLOOM_SOAK_SEED    the random seed to replay a run (default: the time; every run logs its seed)
//
// Everything happens inside a "node" network namespace of the test's own: the plugins are executed
// from threads inside it, so their links, rules and conntrack entries live there, never on the host.
package soak

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"

	"github.com/netloom/netloom/test/harness"
)

const (
	// defaultCycles is the pass inside `make test`: about 1,000 pods, ~60-70 s on a loaded 2-core
	// machine (~70 ms of plugin work per pod there), under the ~90 s that pass may take.
	defaultCycles = 60
	maxConc       = 32 // pods per batch, each ADDed and DELed at once

	soakSubnet    = "10.217.0.0/16"
	soakGateway   = "10.217.0.1" // the bridge's address: the node's address the host ports are dialled at
	soakIfName    = "eth0"
	containerPort = 80
	// Host ports rotate through this range: unique among the pods alive at once, and for the whole
	// run while it uses fewer than soakPortSpan pods.
	firstHostPort = 20000
	soakPortSpan  = 40000

	maxLoggedErrors = 20 // the rest are only counted
	dialTimeout     = 3 * time.Second
	// deadlineMargin is left of go test's -timeout when the loop stops early, so the leftovers check
	// and the cleanups run and report instead of a timeout panic.
	deadlineMargin = 2 * time.Minute
	podReply       = "soak"
)

// soakEnv reads a positive integer from the environment, def when unset.
func soakEnv(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// soakConflist is conflist-examples/bridge-host-local.conflist with the names, the subnet and the
// lease directory made the test's own.
func soakConflist(network, bridge, dataDir string) []byte {
	out, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0",
		"name":       network,
		"plugins": []any{
			map[string]any{"type": "bridge", "bridge": bridge, "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{"type": "host-local", "dataDir": dataDir, "ranges": [][]map[string]string{{{"subnet": soakSubnet}}}}},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	})
	return out
}

// pod is one attachment of a batch.
type pod struct {
	ns       harness.NetNS
	id       string
	hostPort uint16
	ip       netip.Addr // from the ADD result; invalid when the ADD failed
	added    bool
}

func (p *pod) capArgs() map[string]any {
	return map[string]any{"portMappings": []map[string]any{
		{"hostPort": int(p.hostPort), "containerPort": containerPort, "protocol": "tcp"}}}
}

// tally counts what went wrong and collects the latencies; its methods may be called concurrently.
type tally struct {
	t        *testing.T
	mu       sync.Mutex
	errors   int
	add, del []time.Duration
}

func (ty *tally) errorf(format string, args ...any) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	ty.errors++
	if ty.errors <= maxLoggedErrors {
		ty.t.Errorf(format, args...)
	} else if ty.errors == maxLoggedErrors+1 {
		ty.t.Errorf("more errors: only counted from here on")
	}
}

func (ty *tally) sample(samples *[]time.Duration, d time.Duration) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	*samples = append(*samples, d)
}

// TestSoak is the soak: cycles of a random batch of 1..32 pods ADDed at once, a unique address for
// each, ping and a TCP connection through the host port for one or two of them, then all DELed at
// once; then the leftovers check.
func TestSoak(t *testing.T) {
	harness.RequireRoot(t)
	cycles := soakEnv(t, "NETLOOM_SOAK_CYCLES", defaultCycles)
	seed := soakEnv(t, "NETLOOM_SOAK_SEED", uint64(time.Now().UnixNano()))
	t.Logf("seed %d (NETLOOM_SOAK_SEED=%d replays this run), %d cycles", seed, seed, cycles)
	rng := rand.New(rand.NewPCG(seed, seed))

	tag := harness.Unique("s")[:5] // names this run's pods, network and container IDs
	network := "nlsoak-" + tag
	idPrefix := "soak-" + tag + "-"
	podPrefix := tag + "p"
	node := harness.NewNetNS(t, "sn")
	node.Run(t, "ip", "link", "set", "lo", "up")
	bridge := harness.Unique("nlsb")
	dataDir := t.TempDir()
	list := soakConflist(network, bridge, dataDir)
	rt := harness.NewRuntime(t)
	ty := &tally{t: t}

	fdsBefore := openFDs(t)
	start := time.Now()
	var pods, nextPort int
	var baseline []string // the node's rules after the first cycle: the plugins' static structure
	podIPs := map[string]bool{}
	testedPorts := map[uint16]bool{}
	deadline, hasDeadline := t.Deadline()
	done := uint64(0)
	for cycle := range cycles {
		if hasDeadline && time.Until(deadline) < deadlineMargin {
			t.Logf("stopping after %d of %d cycles: go test's -timeout is near (the leftovers check still runs)", cycle, cycles)
			break
		}
		done++
		batch := make([]*pod, 1+rng.IntN(maxConc))
		for i := range batch {
			batch[i] = &pod{
				ns:       harness.NewNetNS(t, podPrefix),
				id:       fmt.Sprintf("%sc%d-p%d", idPrefix, cycle, i),
				hostPort: uint16(firstHostPort + nextPort%soakPortSpan),
			}
			nextPort++
		}
		pods += len(batch)
		label := fmt.Sprintf("cycle %d (%d pods)", cycle, len(batch))

		inParallel(node, ty, label, batch, func(p *pod) {
			t0 := time.Now()
			res, err := rt.Add(t, list, p.id, p.ns.Path, soakIfName, p.capArgs())
			ty.sample(&ty.add, time.Since(t0))
			if err != nil {
				ty.errorf("%s: ADD %s: %v", label, p.id, err)
				return
			}
			p.added = true
			if p.ip, err = resultIP(res); err != nil {
				ty.errorf("%s: ADD %s: %v", label, p.id, err)
			}
		})
		seen := map[netip.Addr]string{}
		for _, p := range batch {
			if !p.ip.IsValid() {
				continue
			}
			if other, dup := seen[p.ip]; dup {
				ty.errorf("%s: %s got %s, which %s holds too", label, p.id, p.ip, other)
			}
			seen[p.ip] = p.id
			podIPs[p.ip.String()] = true
		}

		sample := rng.Perm(len(batch))[:min(len(batch), 1+rng.IntN(2))]
		for _, i := range sample {
			p := batch[i]
			if !p.ip.IsValid() {
				continue
			}
			testedPorts[p.hostPort] = true
			if err := checkTraffic(t, node, p); err != nil {
				ty.errorf("%s: traffic to %s (%s, host port %d): %v", label, p.id, p.ip, p.hostPort, err)
			}
		}

		inParallel(node, ty, label, batch, func(p *pod) {
			t0 := time.Now()
			err := rt.Del(t, list, p.id, p.ns.Path, soakIfName, p.capArgs())
			if p.added {
				ty.sample(&ty.del, time.Since(t0))
			}
			if err != nil {
				ty.errorf("%s: DEL %s: %v", label, p.id, err)
			}
		})
		for _, p := range batch {
			p.ns.Delete(t)
		}
		if cycle == 0 {
			baseline = ruleDump(node)
		}
	}
	wall := time.Since(start)

	leftovers := soakLeftovers(t, node, soakState{
		bridge: bridge, network: network, idPrefix: idPrefix, podPrefix: podPrefix,
		dataDir: dataDir, cacheDir: rt.CacheDir, podIPs: podIPs, ports: testedPorts, baseline: baseline,
	})
	lingering := lingeringFlows(t, node, podIPs, testedPorts, &leftovers)
	fdsAfter := openFDs(t)
	if fdsAfter != fdsBefore {
		leftovers = append(leftovers, fmt.Sprintf("open file descriptors: %d before, %d after", fdsBefore, fdsAfter))
	}

	t.Logf("soak: seed %d, %d/%d cycles, %d pods, wall %v, ADD p50 %v p99 %v, DEL p50 %v p99 %v, errors %d, leftovers %d, finished flows still in conntrack: TCP %d ICMP %d, open fds %d->%d",
		seed, done, cycles, pods, wall.Round(time.Millisecond),
		percentile(ty.add, 50), percentile(ty.add, 99), percentile(ty.del, 50), percentile(ty.del, 99),
		ty.errors, len(leftovers), lingering.tcp, lingering.icmp, fdsBefore, fdsAfter)
	if ty.errors > 0 {
		t.Errorf("%d errors (seed %d)", ty.errors, seed)
	}
	if len(leftovers) > 0 {
		t.Errorf("left behind (seed %d):\n  %s", seed, strings.Join(leftovers, "\n  "))
	}
}

// inParallel runs op for every pod of the batch at once, each on a goroutine whose thread is in node:
// libcni executes the plugins from the calling thread, so they run in node.
func inParallel(node harness.NetNS, ty *tally, label string, batch []*pod, op func(p *pod)) {
	var wg sync.WaitGroup
	for _, p := range batch {
		wg.Go(func() {
			if err := node.Do(func() error { op(p); return nil }); err != nil {
				ty.errorf("%s: %s: enter node namespace: %v", label, p.id, err)
			}
		})
	}
	wg.Wait()
}

// resultIP is the pod's one IPv4 address in an ADD result.
func resultIP(res types.Result) (netip.Addr, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("result: %w", err)
	}
	if len(r.IPs) != 1 {
		return netip.Addr{}, fmt.Errorf("result has %d addresses, want 1", len(r.IPs))
	}
	a, ok := netip.AddrFromSlice(r.IPs[0].Address.IP)
	if !ok {
		return netip.Addr{}, fmt.Errorf("result address %v", r.IPs[0].Address.IP)
	}
	return a.Unmap(), nil
}

// checkTraffic pings p from the node and connects from the node to the node's address at p's host
// port, which a listener in p answers on containerPort. The listener and the client are sockets of
// this process, made from a thread inside each namespace (a socket stays in the namespace it was made
// in): far cheaper than a socat per pod, and they put the test's own descriptors under the fd check.
func checkTraffic(t *testing.T, node harness.NetNS, p *pod) error {
	if err := harness.Ping(t, node, p.ip.String()); err != nil {
		return fmt.Errorf("ping from the node: %w", err)
	}
	var ln net.Listener
	err := p.ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", containerPort))
		return err
	})
	if err != nil {
		return fmt.Errorf("listen in the pod: %w", err)
	}
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		_, err = io.WriteString(c, podReply)
		served <- errors.Join(err, c.Close())
	}()
	var got []byte
	err = node.Do(func() error {
		d := net.Dialer{Timeout: dialTimeout}
		c, err := d.Dial("tcp4", netip.AddrPortFrom(netip.MustParseAddr(soakGateway), p.hostPort).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(dialTimeout))
		got, err = io.ReadAll(c)
		return err
	})
	ln.Close() // ends a pending Accept when the connection never came
	serr := <-served
	switch {
	case err != nil:
		return fmt.Errorf("TCP to %s:%d from the node: %w", soakGateway, p.hostPort, err)
	case serr != nil:
		return fmt.Errorf("pod's listener: %w", serr)
	case string(got) != podReply:
		return fmt.Errorf("TCP to %s:%d: got %q, want %q", soakGateway, p.hostPort, got, podReply)
	}
	return nil
}

// openFDs counts the test process's open file descriptors. The Go runtime opens its netpoller (an
// epoll fd and an eventfd) at the first network socket and keeps it; a loopback listener opened and
// closed first makes that happen before the count, so the two counts compare exactly.
func openFDs(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("warm up the netpoller: %v", err)
	}
	ln.Close()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count open fds: %v", err)
	}
	return len(ents)
}

// soakState is what the leftovers check needs to know about the run.
type soakState struct {
	bridge, network, idPrefix, podPrefix string
	dataDir, cacheDir                    string
	podIPs                               map[string]bool
	ports                                map[uint16]bool
	baseline                             []string
}

// soakLeftovers lists what the pods left: links in the node besides lo and the bridge, pod
// namespaces, lease files, libcni cache entries, rules naming the network, a container, a pod's address
// or a per-pod portmap chain, and rules that were not there after the first cycle. The plugins' static
// structure (netloom portmap's table inet netloom_portmap with its chains and empty maps, the nat
// table and POSTROUTING chain for ipMasq) names none of these and is there after the first cycle.
func soakLeftovers(t *testing.T, node harness.NetNS, s soakState) []string {
	t.Helper()
	var items []string
	err := node.Do(func() error {
		ls, err := netlinksafe.LinkList()
		if err != nil {
			return err
		}
		for _, l := range ls {
			if name := l.Attrs().Name; name != "lo" && name != s.bridge {
				items = append(items, fmt.Sprintf("node: link %s (%s)", name, l.Type()))
			}
		}
		return nil
	})
	if err != nil {
		items = append(items, fmt.Sprintf("node: list links: %v", err))
	}
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		items = append(items, fmt.Sprintf("list /run/netns: %v", err))
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), s.podPrefix) {
			items = append(items, "pod netns "+e.Name())
		}
	}
	for _, lease := range harness.Leases(t, s.dataDir, s.network) {
		items = append(items, "lease file "+lease)
	}
	_ = filepath.WalkDir(s.cacheDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			items = append(items, "libcni cache entry "+path)
		}
		return nil
	})
	for _, line := range ruleDump(node) {
		switch {
		case ruleNamesPod(line, s):
			items = append(items, "rule "+line)
		case !slices.Contains(s.baseline, line):
			items = append(items, "rule that was not there after the first cycle: "+line)
		}
	}
	return items
}

// ruleCounters matches the packet and byte counters iptables-save and nft print, which change with
// traffic, not with rules.
var ruleCounters = regexp.MustCompile(`\[\d+:\d+\]|packets \d+ bytes \d+`)

// ruleDump is every rule line of the node's iptables-save, ip6tables-save and nft ruleset, each
// prefixed with its command, without comments and counters.
func ruleDump(node harness.NetNS) []string {
	var out []string
	for _, cmd := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}} {
		text, err := node.Exec(cmd...)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", cmd[0], err))
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(ruleCounters.ReplaceAllString(line, ""))
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			out = append(out, cmd[0]+": "+line)
		}
	}
	return out
}

// ipToken finds the candidate IPv4 addresses in a line; portToken the ports after "dport".
var (
	ipToken   = regexp.MustCompile(`\d+(?:\.\d+){3}`)
	portToken = regexp.MustCompile(`dport (\d+)`)
)

func ruleNamesPod(line string, s soakState) bool {
	if strings.Contains(line, s.network) || strings.Contains(line, s.idPrefix) || strings.Contains(line, "CNI-DN-") {
		return true
	}
	for _, tok := range ipToken.FindAllString(line, -1) {
		if s.podIPs[tok] {
			return true
		}
	}
	for _, m := range portToken.FindAllStringSubmatch(line, -1) {
		if p, err := strconv.ParseUint(m[1], 10, 16); err == nil && s.ports[uint16(p)] {
			return true
		}
	}
	return false
}

// Conntrack lines: "tcp 6 118 TIME_WAIT src=10.217.0.1 dst=10.217.0.1 sport=41000 dport=20001 src=10.217.0.5 ...".
var (
	ctDport = regexp.MustCompile(`\bdport=(\d+)`)
	ctAddr  = regexp.MustCompile(`\b(?:src|dst)=(\S+)`)
)

// closedFlows counts the finished flows the kernel still keeps in conntrack.
type closedFlows struct{ tcp, icmp int }

// lingeringFlows reads the node's conntrack table and appends to leftovers every entry of a tested
// host port or a pod address that is a live flow. The pods are gone, so a live flow to one would
// blackhole the next client that reuses its tuple. What the kernel keeps by design is allowed and
// only counted: a TCP connection the test closed stays in TIME_WAIT (120 s) or CLOSE (10 s), and a
// ping's ICMP entry for 30 s; DEL has nothing to remove there. (portmap flushes the UDP entries of a
// host port at ADD, not at DEL; the soak maps TCP only.)
func lingeringFlows(t *testing.T, node harness.NetNS, podIPs map[string]bool, ports map[uint16]bool, leftovers *[]string) closedFlows {
	t.Helper()
	// stdout only (not node.Exec's combined output): conntrack writes its summary line to stderr
	// while its stdout sits in a buffer, and the two would interleave mid-line.
	var stderr strings.Builder
	cmd := exec.Command("ip", "netns", "exec", node.Name, "conntrack", "-L")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		*leftovers = append(*leftovers, fmt.Sprintf("conntrack -L in the node: %v: %s", err, stderr.String()))
		return closedFlows{}
	}
	var closed closedFlows
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		ours := false
		for _, m := range ctDport.FindAllStringSubmatch(line, -1) {
			if p, err := strconv.ParseUint(m[1], 10, 16); err == nil && ports[uint16(p)] {
				ours = true
			}
		}
		for _, m := range ctAddr.FindAllStringSubmatch(line, -1) {
			if podIPs[m[1]] {
				ours = true
			}
		}
		if !ours {
			continue
		}
		switch {
		case f[0] == "tcp" && (f[3] == "TIME_WAIT" || f[3] == "CLOSE"):
			closed.tcp++
		case f[0] == "icmp" && !strings.Contains(line, "[UNREPLIED]"):
			closed.icmp++
		default:
			*leftovers = append(*leftovers, "live conntrack flow: "+strings.TrimSpace(line))
		}
	}
	return closed
}

// percentile is the nearest-rank percentile p (0..100) of samples, rounded for the summary.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)].Round(100 * time.Microsecond)
}
