package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netloom/netloom/test/harness"
)

// Host-local lease benchmark: addresses, the leases already on the node, and runs per measurement.
const (
	leasesNetwork = "nlleases"
	leasesSubnet  = "10.220.0.0/16"
	leasesRuns    = 30
	// leasesFirst is the first address host-local hands out in leasesSubnet: .1 is the gateway.
	leasesFirst = "10.220.0.2"
)

// pluginExecTimeout bounds one direct plugin execution.
const pluginExecTimeout = 2 * time.Minute

// BenchmarkHostLocalLeases measures host-local ADD and DEL of one container, executed directly as a
// delegating plugin would, with 0 and 10,000 leases already in the network's directory (written in the
// on-disk format both suites share, with last_reserved_ip pointing at the newest, as on a busy node).
// netloom and the reference alternate run by run.
func BenchmarkHostLocalLeases(b *testing.B) {
	harness.RequireRoot(b)
	bins := map[string]string{
		suiteNetloom:   filepath.Join(harness.PluginDir(b), "host-local"),
		suiteReference: filepath.Join(harness.ReferencePlugin(b, "host-local"), "host-local"),
	}
	suites := []string{suiteNetloom, suiteReference}
	for _, existing := range []int{0, 10000} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			pod := harness.NewNetNS(b, "hlp") // CNI_NETNS must name a namespace; host-local never enters it
			stdin := map[string][]byte{}
			for _, s := range suites {
				dataDir := b.TempDir()
				if err := writeLeases(dataDir, leasesNetwork, existing); err != nil {
					b.Fatal(err)
				}
				stdin[s] = ipamConf(leasesNetwork, dataDir, leasesSubnet)
			}
			add := map[string][]time.Duration{}
			del := map[string][]time.Duration{}
			for run := range leasesRuns {
				for _, s := range suites {
					env := map[string]string{"CNI_CONTAINERID": fmt.Sprintf("extra-%d", run), "CNI_NETNS": pod.Path,
						"CNI_IFNAME": "eth0", "CNI_PATH": filepath.Dir(bins[s])}
					env["CNI_COMMAND"] = "ADD"
					t0 := time.Now()
					if out, err := harness.RunPlugin(b, bins[s], env, stdin[s]); err != nil {
						b.Fatalf("%s host-local ADD with %d leases: %v: %s", s, existing, err, out)
					}
					t1 := time.Now()
					env["CNI_COMMAND"] = "DEL"
					if out, err := harness.RunPlugin(b, bins[s], env, stdin[s]); err != nil {
						b.Fatalf("%s host-local DEL with %d leases: %v: %s", s, existing, err, out)
					}
					add[s] = append(add[s], t1.Sub(t0))
					del[s] = append(del[s], time.Since(t1))
				}
			}
			scenario := fmt.Sprintf("host-local, %d leases", existing)
			for _, s := range suites {
				both := make([]time.Duration, len(add[s]))
				for i := range both {
					both[i] = add[s][i] + del[s][i]
				}
				results.record(scenario, "ADD p50", "ms", s, ms(percentile(add[s], 50)), false)
				results.record(scenario, "DEL p50", "ms", s, ms(percentile(del[s], 50)), false)
				results.record(scenario, "ADD+DEL p50", "ms", s, ms(percentile(both, 50)), false)
				b.ReportMetric(ms(percentile(add[s], 50)), s+"-add-p50-ms")
			}
		})
	}
}

// ipamConf is the network config a main plugin hands host-local: its own keys and the ipam section.
func ipamConf(network, dataDir, subnet string) []byte {
	out, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": network, "type": "bridge",
		"ipam": map[string]any{"type": "host-local", "dataDir": dataDir,
			"ranges": [][]map[string]string{{{"subnet": subnet}}}},
	})
	return out
}

// writeLeases fills <dataDir>/<network> with n leases from leasesFirst on, each a file named by the
// address holding "<containerID>\r\n<ifname>" (pkg/ipam/store.go, the reference's format), and points
// last_reserved_ip.0 at the last of them.
func writeLeases(dataDir, network string, n int) error {
	dir := filepath.Join(dataDir, network)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("leases: %w", err)
	}
	addr := netip.MustParseAddr(leasesFirst)
	var last netip.Addr
	for i := range n {
		body := fmt.Sprintf("filler-%d\r\neth0", i)
		if err := os.WriteFile(filepath.Join(dir, addr.String()), []byte(body), 0o600); err != nil {
			return fmt.Errorf("lease %d: %w", i, err)
		}
		last, addr = addr, addr.Next()
	}
	if n > 0 {
		if err := os.WriteFile(filepath.Join(dir, "last_reserved_ip.0"), []byte(last.String()), 0o600); err != nil {
			return fmt.Errorf("last reserved: %w", err)
		}
	}
	return nil
}

// processCost is what one plugin process (and the children it waited for) used.
type processCost struct {
	cpu    time.Duration // user + system
	maxRSS int64         // KiB, the largest of the process and its waited-for children
}

// execWithRusage runs a plugin binary with only the CNI variables in env (plus PATH) and stdin, and
// returns its stdout and the CPU time it (and the children it waited for) used. Its Maxrss is not the
// plugin's: Go starts a process with vfork, and the kernel carries the parent's peak RSS over into
// the child at exec, so every child of the test process reports at least the test process's RSS.
func execWithRusage(bin string, env map[string]string, stdin []byte) ([]byte, time.Duration, error) {
	out, ru, err := runCNI([]string{bin}, env, stdin)
	var cpu time.Duration
	if ru != nil {
		cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	}
	return out, cpu, err
}

// peakRSS runs a plugin binary as execWithRusage does, under GNU time (timeBin), which starts it with
// a real fork: the peak RSS time reports (KiB) is then the plugin's own, or its waited-for children's
// if larger, above a floor of time's own RSS (about 1 MiB).
func peakRSS(timeBin, bin string, env map[string]string, stdin []byte) ([]byte, int64, error) {
	f, err := os.CreateTemp("", "nlbench-rss-")
	if err != nil {
		return nil, 0, fmt.Errorf("peak RSS: %w", err)
	}
	name := f.Name()
	_ = f.Close()
	defer os.Remove(name)
	out, _, err := runCNI([]string{timeBin, "-f", "%M", "-o", name, bin}, env, stdin)
	if err != nil {
		return out, 0, err
	}
	text, err := os.ReadFile(name)
	if err != nil {
		return out, 0, fmt.Errorf("peak RSS: %w", err)
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64)
	if err != nil {
		return out, 0, fmt.Errorf("peak RSS: %s printed %q: %w", timeBin, text, err)
	}
	return out, kib, nil
}

// runCNI executes argv with only the CNI variables in env (plus PATH) and stdin, and returns stdout
// and the process's resource usage.
func runCNI(argv []string, env map[string]string, stdin []byte) ([]byte, *syscall.Rusage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pluginExecTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ru *syscall.Rusage
	if cmd.ProcessState != nil {
		ru, _ = cmd.ProcessState.SysUsage().(*syscall.Rusage)
	}
	if err != nil {
		return stdout.Bytes(), ru, fmt.Errorf("%s %s: %w (stderr: %q)", filepath.Base(argv[len(argv)-1]), env["CNI_COMMAND"], err, stderr.String())
	}
	return stdout.Bytes(), ru, nil
}

// costRuns is how many ADDs of each plugin BenchmarkPluginCost measures per suite.
const costRuns = 15

// costSubject is one plugin whose ADD BenchmarkPluginCost measures, with the DEL that undoes it.
type costSubject struct {
	plugin string
	stdin  func(dataDir, bridge string, hostPort int) []byte
}

func costSubjects() []costSubject {
	return []costSubject{
		{"bridge", func(dataDir, bridge string, _ int) []byte {
			out, _ := json.Marshal(map[string]any{
				"cniVersion": "1.1.0", "name": "nlcost", "type": "bridge", "bridge": bridge,
				"isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{"type": "host-local", "dataDir": dataDir,
					"ranges": [][]map[string]string{{{"subnet": "10.221.0.0/16"}}}},
			})
			return out
		}},
		{"portmap", func(_, _ string, hostPort int) []byte { return costPortmapConf(hostPort) }},
		{"host-local", func(dataDir, _ string, _ int) []byte { return ipamConf("nlcost", dataDir, "10.222.0.0/16") }},
	}
}

// costPortmapConf is a chained portmap config with one mapping and a bridge pod's prevResult, with no
// backend: each suite runs its default.
func costPortmapConf(hostPort int) []byte {
	out, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": "nlcost", "type": "portmap",
		"runtimeConfig": map[string]any{"portMappings": []map[string]any{
			{"hostPort": hostPort, "containerPort": 80, "protocol": "tcp"}}},
		"prevResult": map[string]any{
			"cniVersion": "1.1.0",
			"interfaces": []map[string]any{{"name": "eth0", "sandbox": "/var/run/netns/x"}},
			"ips":        []map[string]any{{"address": "10.223.0.2/24", "interface": 0}},
		},
	})
	return out
}

// BenchmarkPluginCost measures the CPU time (user + system) and peak RSS of one plugin process per ADD,
// executed directly in a node namespace of its own: bridge (including the host-local it delegates to
// and waits for: CPU is summed, RSS is the larger of the two), portmap with a prevResult, host-local
// alone; and the size of each plugin binary. netloom and the reference alternate run by run.
func BenchmarkPluginCost(b *testing.B) {
	harness.RequireRoot(b)
	dirs := map[string]map[string]string{suiteNetloom: {}, suiteReference: {}}
	for _, p := range []string{"bridge", "host-local", "portmap", "macvlan"} {
		dirs[suiteNetloom][p] = harness.PluginDir(b)
		dirs[suiteReference][p] = harness.ReferencePlugin(b, p)
	}
	suites := []string{suiteNetloom, suiteReference}
	timeBin := gnuTime()
	if timeBin == "" {
		b.Logf("no GNU time (/usr/bin/time, Debian package \"time\"): peak RSS is not measured")
	}
	for _, s := range suites {
		for _, p := range []string{"bridge", "host-local", "portmap", "macvlan"} {
			fi, err := os.Stat(filepath.Join(dirs[s][p], p))
			if err != nil {
				b.Fatalf("%s %s: %v", s, p, err)
			}
			results.record("binary size", p, "KiB", s, float64(fi.Size())/1024, false)
		}
	}
	for _, subj := range costSubjects() {
		b.Run(subj.plugin, func(b *testing.B) {
			node := harness.NewNetNS(b, "cst")
			node.Run(b, "ip", "link", "set", "lo", "up")
			pod := harness.NewNetNS(b, "csp")
			bridge := harness.Unique("nlsb")
			dataDirs := map[string]string{}
			for _, s := range suites {
				dataDirs[s] = b.TempDir()
			}
			costs := map[string][]processCost{}
			for run := range costRuns {
				for _, s := range suites {
					bin := filepath.Join(dirs[s][subj.plugin], subj.plugin)
					stdin := subj.stdin(dataDirs[s], bridge, 40000+run)
					env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": fmt.Sprintf("cost-%d", run),
						"CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0", "CNI_PATH": dirs[s]["host-local"]}
					err := node.Do(func() error {
						out, cpu, err := execWithRusage(bin, env, stdin)
						if err != nil {
							return fmt.Errorf("%w: %s", err, out)
						}
						if err := delPlugin(bin, env, stdin); err != nil {
							return err
						}
						c := processCost{cpu: cpu}
						if timeBin != "" {
							env["CNI_COMMAND"] = "ADD"
							out, c.maxRSS, err = peakRSS(timeBin, bin, env, stdin)
							if err != nil {
								return fmt.Errorf("%w: %s", err, out)
							}
							if err := delPlugin(bin, env, stdin); err != nil {
								return err
							}
						}
						costs[s] = append(costs[s], c)
						return nil
					})
					if err != nil {
						b.Fatalf("%s %s run %d: %v", s, subj.plugin, run, err)
					}
				}
			}
			scenario := subj.plugin + " ADD, one process"
			if subj.plugin == "bridge" {
				scenario = "bridge ADD, with its host-local"
			}
			for _, s := range suites {
				var cpu []time.Duration
				var rss []int64
				for _, c := range costs[s] {
					cpu = append(cpu, c.cpu)
					rss = append(rss, c.maxRSS)
				}
				results.record(scenario, "CPU p50", "ms", s, ms(percentile(cpu, 50)), false)
				b.ReportMetric(ms(percentile(cpu, 50)), s+"-cpu-ms")
				if timeBin == "" {
					continue
				}
				slices.Sort(rss)
				results.record(scenario, "peak RSS p50", "KiB", s, float64(rss[len(rss)/2]), false)
				results.record(scenario, "peak RSS max", "KiB", s, float64(rss[len(rss)-1]), false)
				b.ReportMetric(float64(rss[len(rss)/2]), s+"-maxrss-KiB")
			}
			results.param("costRuns", strconv.Itoa(costRuns))
		})
	}
}

// delPlugin runs DEL of what an ADD with env and stdin made.
func delPlugin(bin string, env map[string]string, stdin []byte) error {
	env["CNI_COMMAND"] = "DEL"
	defer func() { env["CNI_COMMAND"] = "ADD" }()
	if out, _, err := runCNI([]string{bin}, env, stdin); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// gnuTime is the path of GNU time, which reports a child's peak RSS, or "" when it is not installed.
func gnuTime() string {
	for _, p := range []string{"/usr/bin/time", "/bin/time"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}
