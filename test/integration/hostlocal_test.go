package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/netloom/netloom/pkg/ipam"
	"github.com/netloom/netloom/test/harness"
)

// host-local needs no privilege and no namespace: these tests run as any user, except the one that
// mounts a read-only filesystem. CNI_NETNS is required by the protocol but never opened.
const hlNetns = "/var/run/netns/netloom-hostlocal-unused"

// hlNet is one host-local network with a private dataDir. 10.214.x.0/24 and fd14:x::/64 are
// test-only ranges; no traffic is ever sent to them.
type hlNet struct {
	Name, DataDir string
	Sets          [][]map[string]string
}

func newHLNet(t *testing.T, subnets ...string) *hlNet {
	t.Helper()
	n := &hlNet{Name: harness.Unique("hl"), DataDir: t.TempDir()}
	for _, s := range subnets {
		n.Sets = append(n.Sets, []map[string]string{{"subnet": s}})
	}
	return n
}

func (n *hlNet) ipam() map[string]any {
	return map[string]any{"type": "host-local", "dataDir": n.DataDir, "ranges": n.Sets}
}

// netconf is the config a runtime pipes to the plugin (extra: more top-level keys).
func (n *hlNet) netconf(cniVersion string, extra map[string]any) []byte {
	p := map[string]any{"cniVersion": cniVersion, "name": n.Name, "type": "host-local", "ipam": n.ipam()}
	for k, v := range extra {
		p[k] = v
	}
	out, _ := json.Marshal(p)
	return out
}

func (n *hlNet) conflist(cniVersion string) []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": n.Name,
		"plugins": []any{map[string]any{"type": "host-local", "ipam": n.ipam()}}})
	return out
}

func (n *hlNet) dir() string { return filepath.Join(n.DataDir, n.Name) }

// leases maps each lease file's address to its content.
func (n *hlNet) leases(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(n.dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		if _, err := netip.ParseAddr(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(n.dir(), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// hlRun execs a host-local binary (a name in PluginDir, or a path) for one attachment.
func hlRun(t *testing.T, binary, cmd, containerID string, stdin []byte, extraEnv ...string) ([]byte, error) {
	t.Helper()
	env := map[string]string{"CNI_COMMAND": cmd, "CNI_CONTAINERID": containerID, "CNI_NETNS": hlNetns, "CNI_IFNAME": "eth0"}
	for _, kv := range extraEnv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if cmd == "GC" || cmd == "STATUS" {
		delete(env, "CNI_CONTAINERID")
		delete(env, "CNI_NETNS")
		delete(env, "CNI_IFNAME")
	}
	return harness.RunPlugin(t, binary, env, stdin)
}

// resultAddrs parses a printed result of any CNI version and returns its addresses.
func resultAddrs(t *testing.T, cniVersion string, out []byte) []netip.Prefix {
	t.Helper()
	r, err := version.NewResult(cniVersion, out)
	if err != nil {
		t.Fatalf("parse %s result %s: %v", cniVersion, out, err)
	}
	return podAddrs(t, r)
}

type cniErr struct {
	Code uint   `json:"code"`
	Msg  string `json:"msg"`
}

// wantCNIError checks that a failed exec printed a CNI error with code whose message contains each of naming.
func wantCNIError(t *testing.T, out []byte, err error, code uint, naming ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("exit status 0, want CNI error %d; stdout: %s", code, out)
	}
	var e cniErr
	if jerr := json.Unmarshal(out, &e); jerr != nil {
		t.Fatalf("stdout is not a CNI error (%v): %q", jerr, out)
	}
	if e.Code != code {
		t.Errorf("code %d (%q), want %d", e.Code, e.Msg, code)
	}
	for _, s := range naming {
		if !strings.Contains(e.Msg, s) {
			t.Errorf("message %q does not contain %q", e.Msg, s)
		}
	}
}

func TestHostLocalEveryCNIVersion(t *testing.T) {
	t.Parallel()
	for i, v := range []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		i++ // fd14:1:: and up: fd14:0:: would print as fd14::
		t.Run(v, func(t *testing.T) {
			n := newHLNet(t, fmt.Sprintf("10.214.%d.0/24", i), fmt.Sprintf("fd14:%x::/64", i))
			conf := n.netconf(v, nil)
			out, err := hlRun(t, "host-local", "ADD", "ctr-exec", conf)
			if err != nil {
				t.Fatalf("exec ADD: %v: %s", err, out)
			}
			if v != "0.1.0" && v != "0.2.0" { // results of 0.1.0 and 0.2.0 carry no cniVersion
				var got struct {
					CNIVersion string `json:"cniVersion"`
				}
				if err := json.Unmarshal(out, &got); err != nil || got.CNIVersion != v {
					t.Errorf("printed cniVersion %q, want %s: %s", got.CNIVersion, v, out)
				}
			}
			addrs := resultAddrs(t, v, out)
			want := []string{fmt.Sprintf("10.214.%d.2/24", i), fmt.Sprintf("fd14:%x::2/64", i)}
			if got := prefixStrings(addrs); !slices.Equal(got, want) {
				t.Errorf("exec ADD addresses %v, want %v", got, want)
			}
			if ok, _ := version.GreaterThanOrEqualTo(v, "0.4.0"); ok {
				if out, err := hlRun(t, "host-local", "CHECK", "ctr-exec", conf); err != nil {
					t.Errorf("exec CHECK: %v: %s", err, out)
				}
			}
			if out, err := hlRun(t, "host-local", "DEL", "ctr-exec", conf); err != nil {
				t.Errorf("exec DEL: %v: %s", err, out)
			}
			if l := n.leases(t); len(l) != 0 {
				t.Errorf("leases after DEL: %v", l)
			}
			if ok, _ := version.GreaterThanOrEqualTo(v, "0.3.0"); !ok {
				return // a conflist needs 0.3.0
			}

			// Through libcni, as containerd and CRI-O call it.
			rt := harness.NewRuntime(t)
			list := n.conflist(v)
			r, err := rt.Add(t, list, "ctr-lib", hlNetns, "eth0", nil)
			if err != nil {
				t.Fatalf("libcni ADD: %v", err)
			}
			if r.Version() != v {
				t.Errorf("libcni result version %s, want %s", r.Version(), v)
			}
			// Round robin: the address after the one the exec ADD had.
			want = []string{fmt.Sprintf("10.214.%d.3/24", i), fmt.Sprintf("fd14:%x::3/64", i)}
			if got := prefixStrings(podAddrs(t, r)); !slices.Equal(got, want) {
				t.Errorf("libcni ADD addresses %v, want %v", got, want)
			}
			if ok, _ := version.GreaterThanOrEqualTo(v, "0.4.0"); ok {
				if err := rt.Check(t, list, "ctr-lib", hlNetns, "eth0", nil); err != nil {
					t.Errorf("libcni CHECK: %v", err)
				}
			}
			if v == "1.1.0" {
				if err := rt.Status(t, list); err != nil {
					t.Errorf("libcni STATUS: %v", err)
				}
			}
			if err := rt.Del(t, list, "ctr-lib", hlNetns, "eth0", nil); err != nil {
				t.Errorf("libcni DEL: %v", err)
			}
			if l := n.leases(t); len(l) != 0 {
				t.Errorf("leases after libcni DEL: %v", l)
			}
		})
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// Requested addresses from every source the reference reads, and the config errors a runtime sees.
func TestHostLocalRequestsAndErrors(t *testing.T) {
	t.Parallel()
	n := newHLNet(t, "10.214.20.0/24", "fd14:20::/64")
	out, err := hlRun(t, "host-local", "ADD", "ctr-a", n.netconf("1.1.0", nil), "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.214.20.50")
	if err != nil {
		t.Fatalf("ADD with CNI_ARGS IP: %v: %s", err, out)
	}
	if got := prefixStrings(resultAddrs(t, "1.1.0", out)); got[0] != "10.214.20.50/24" {
		t.Errorf("CNI_ARGS IP gave %v", got)
	}
	rc := map[string]any{"runtimeConfig": map[string]any{"ips": []string{"10.214.20.60/24", "fd14:20::60"}}}
	out, err = hlRun(t, "host-local", "ADD", "ctr-b", n.netconf("1.1.0", rc))
	if err != nil {
		t.Fatalf("ADD with runtimeConfig.ips: %v: %s", err, out)
	}
	if got := prefixStrings(resultAddrs(t, "1.1.0", out)); !slices.Equal(got, []string{"10.214.20.60/24", "fd14:20::60/64"}) {
		t.Errorf("runtimeConfig.ips gave %v", got)
	}
	out, err = hlRun(t, "host-local", "ADD", "ctr-c", n.netconf("1.1.0", rc))
	wantCNIError(t, out, err, 7, "runtimeConfig.ips[0]", "10.214.20.60", "ctr-b/eth0")

	args := map[string]any{"args": map[string]any{"cni": map[string]any{"ips": []string{"10.99.0.1"}}}}
	out, err = hlRun(t, "host-local", "ADD", "ctr-d", n.netconf("1.1.0", args))
	wantCNIError(t, out, err, 7, "args.cni.ips[0]", "not in any range")

	bad := newHLNet(t, "10.214.21.0/24")
	bad.Sets[0][0]["gateway"] = "10.1.1.1"
	out, err = hlRun(t, "host-local", "ADD", "ctr-e", bad.netconf("1.1.0", nil))
	wantCNIError(t, out, err, 7, "ipam.ranges[0][0].gateway")

	out, err = hlRun(t, "host-local", "ADD", "../../etc/x", n.netconf("1.1.0", nil))
	wantCNIError(t, out, err, 4, "containerID")
	if l := n.leases(t); len(l) != 4 {
		t.Errorf("leases %v, want ctr-a's and ctr-b's only", l)
	}
}

// Concurrent plugin processes serialise on the lock: 32 ADDs get 32 distinct addresses, and DELs
// leave nothing but the lock and last-reserved files.
func TestHostLocalConcurrentProcesses(t *testing.T) {
	t.Parallel()
	const procs = 32
	n := newHLNet(t, "10.214.30.0/24", "fd14:30::/64")
	conf := n.netconf("1.1.0", nil)
	addrs := make([][]netip.Prefix, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			out, err := hlRun(t, "host-local", "ADD", fmt.Sprintf("ctr-%d", i), conf)
			if err != nil {
				errs[i] = fmt.Errorf("%w: %s", err, out)
				return
			}
			addrs[i] = resultAddrs(t, "1.1.0", out)
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i := range procs {
		if errs[i] != nil {
			t.Errorf("ADD %d: %v", i, errs[i])
			continue
		}
		for _, p := range addrs[i] {
			if j, dup := seen[p.Addr()]; dup {
				t.Errorf("ADDs %d and %d both got %s", j, i, p)
			}
			seen[p.Addr()] = i
		}
	}
	if len(seen) != 2*procs {
		t.Errorf("%d distinct addresses, want %d", len(seen), 2*procs)
	}
	if got := len(n.leases(t)); got != 2*procs {
		t.Errorf("%d lease files, want %d", got, 2*procs)
	}
	for i := range procs {
		wg.Go(func() {
			if out, err := hlRun(t, "host-local", "DEL", fmt.Sprintf("ctr-%d", i), conf); err != nil {
				t.Errorf("DEL %d: %v: %s", i, err, out)
			}
		})
	}
	wg.Wait()
	ents, err := os.ReadDir(n.dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "lock" && e.Name() != ipam.IndexFile && !strings.HasPrefix(e.Name(), "last_reserved_ip.") {
			t.Errorf("left in the store: %s", e.Name())
		}
	}
}

func TestHostLocalGC(t *testing.T) {
	t.Parallel()
	n := newHLNet(t, "10.214.40.0/24")
	list := n.conflist("1.1.0")
	rt := harness.NewRuntime(t)
	for _, id := range []string{"ctr-live", "ctr-leak1", "ctr-leak2"} {
		if _, err := rt.Add(t, list, id, hlNetns, "eth0", nil); err != nil {
			t.Fatalf("ADD %s: %v", id, err)
		}
	}
	// A lease in the pre-ifname format, of a container the runtime no longer knows.
	if err := os.WriteFile(filepath.Join(n.dir(), "10.214.40.200"), []byte("ctr-ancient"), 0o600); err != nil {
		t.Fatal(err)
	}
	// GC from a runtime that lost its cache: only the plugin's GC can find the leaks.
	valid := []types.GCAttachment{{ContainerID: "ctr-live", IfName: "eth0"}}
	if err := rt.GCOnly(t, list, valid); err != nil {
		t.Fatalf("GC: %v", err)
	}
	l := n.leases(t)
	if len(l) != 1 || l["10.214.40.2"] != "ctr-live\r\neth0" {
		t.Errorf("after GC: %v, want ctr-live's lease only", l)
	}
	if err := rt.Check(t, list, "ctr-live", hlNetns, "eth0", nil); err != nil {
		t.Errorf("CHECK of the live attachment after GC: %v", err)
	}
	// The libcni way (DEL of cached attachments, then GC) with nothing valid empties the store.
	if err := rt.GC(t, list, nil); err != nil {
		t.Fatalf("GC with nothing valid: %v", err)
	}
	if l := n.leases(t); len(l) != 0 {
		t.Errorf("after GC with nothing valid: %v", l)
	}
	// GC without the valid list is refused rather than read as "nothing is valid".
	out, err := hlRun(t, "host-local", "GC", "", n.netconf("1.1.0", nil))
	wantCNIError(t, out, err, 7, "cni.dev/valid-attachments")
}

func TestHostLocalStatus(t *testing.T) {
	t.Parallel()
	t.Run("exhausted range", func(t *testing.T) {
		n := newHLNet(t, "10.214.50.0/24", "10.214.51.0/30")
		conf := n.netconf("1.1.0", nil)
		if out, err := hlRun(t, "host-local", "STATUS", "", conf); err != nil {
			t.Fatalf("STATUS of a fresh network: %v: %s", err, out)
		}
		if out, err := hlRun(t, "host-local", "ADD", "ctr-1", conf); err != nil {
			t.Fatalf("ADD: %v: %s", err, out)
		}
		out, err := hlRun(t, "host-local", "STATUS", "", conf)
		wantCNIError(t, out, err, 50, "10.214.51.0/30 (rangeset 1)")
		out, err = hlRun(t, "host-local", "ADD", "ctr-2", conf)
		wantCNIError(t, out, err, 50, "no free address in range 10.214.51.0/30 (rangeset 1): all 1 addresses are leased")
		if l := n.leases(t); len(l) != 2 {
			t.Errorf("failed ADD left leases: %v", l)
		}
		// libcni hands the runtime the same code.
		err = harness.NewRuntime(t).Status(t, n.conflist("1.1.0"))
		var te *types.Error
		if !errors.As(err, &te) || te.Code != 50 || !strings.Contains(te.Msg, "10.214.51.0/30") {
			t.Errorf("libcni STATUS: %v", err)
		}
	})
	t.Run("dataDir under a regular file", func(t *testing.T) {
		n := newHLNet(t, "10.214.52.0/24")
		file := filepath.Join(t.TempDir(), "not-a-dir")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		n.DataDir = filepath.Join(file, "networks")
		out, err := hlRun(t, "host-local", "STATUS", "", n.netconf("1.1.0", nil))
		wantCNIError(t, out, err, 50, file)
		out, err = hlRun(t, "host-local", "ADD", "ctr-1", n.netconf("1.1.0", nil))
		wantCNIError(t, out, err, 5, file)
	})
	t.Run("read-only filesystem", func(t *testing.T) {
		harness.RequireRoot(t) // to mount; root writes through mode bits, so only a read-only mount fails for it
		n := newHLNet(t, "10.214.53.0/24")
		n.DataDir = t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "netloom-test", n.DataDir).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", n.DataDir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", n.DataDir, err, out)
			}
		})
		conf := n.netconf("1.1.0", nil)
		if out, err := hlRun(t, "host-local", "ADD", "ctr-1", conf); err != nil {
			t.Fatalf("ADD: %v: %s", err, out)
		}
		if out, err := exec.Command("mount", "-o", "remount,ro", n.DataDir).CombinedOutput(); err != nil {
			t.Fatalf("remount ro: %v: %s", err, out)
		}
		// The lease directory and lock exist, so only the probe file shows the problem.
		out, err := hlRun(t, "host-local", "STATUS", "", conf)
		wantCNIError(t, out, err, 50, "not writable")
		out, err = hlRun(t, "host-local", "ADD", "ctr-2", conf)
		wantCNIError(t, out, err, 5, "read-only")
		if out, err := hlRun(t, "host-local", "CHECK", "ctr-1", conf); err != nil {
			t.Errorf("CHECK on a read-only store: %v: %s", err, out)
		}
	})
}

// The reference plugin and netloom's share one store: leases written by either are honoured, checked
// and released by the other, and both lock the same file.
func TestHostLocalReferenceStoreCompat(t *testing.T) {
	t.Parallel()
	ref := filepath.Join(harness.ReferencePlugin(t, "host-local"), "host-local")
	const v = "1.0.0" // the reference plugin's newest result version
	ids := []string{"ctr-1", "ctr-2", "ctr-3"}

	for _, dir := range []struct{ name, writer, reader string }{
		{"reference writes, netloom reads", ref, "host-local"},
		{"netloom writes, reference reads", "host-local", ref},
	} {
		t.Run(dir.name, func(t *testing.T) {
			n := newHLNet(t, "10.214.60.0/24", "fd14:60::/64")
			conf := n.netconf(v, nil)
			written := map[netip.Addr]bool{}
			for _, id := range ids {
				out, err := hlRun(t, dir.writer, "ADD", id, conf)
				if err != nil {
					t.Fatalf("writer ADD %s: %v: %s", id, err, out)
				}
				for _, p := range resultAddrs(t, v, out) {
					written[p.Addr()] = true
				}
			}
			before := n.leases(t)
			for _, id := range ids {
				if out, err := hlRun(t, dir.reader, "CHECK", id, conf); err != nil {
					t.Errorf("reader CHECK %s: %v: %s", id, err, out)
				}
			}
			if out, err := hlRun(t, dir.reader, "CHECK", "ctr-unknown", conf); err == nil {
				t.Errorf("reader CHECK of an unknown container passed: %s", out)
			}
			// The reader hands out new addresses only, continuing the writer's round robin.
			out, err := hlRun(t, dir.reader, "ADD", "ctr-new", conf)
			if err != nil {
				t.Fatalf("reader ADD: %v: %s", err, out)
			}
			got := prefixStrings(resultAddrs(t, v, out))
			if want := []string{"10.214.60.5/24", "fd14:60::5/64"}; !slices.Equal(got, want) {
				t.Errorf("reader ADD got %v, want %v (after the writer's last reserved)", got, want)
			}
			for _, s := range got {
				if written[netip.MustParsePrefix(s).Addr()] {
					t.Errorf("reader handed out %s, leased by the writer", s)
				}
			}
			// The reader's DELs release the writer's leases.
			for _, id := range ids {
				if out, err := hlRun(t, dir.reader, "DEL", id, conf); err != nil {
					t.Errorf("reader DEL %s: %v: %s", id, err, out)
				}
			}
			after := n.leases(t)
			for a := range before {
				if _, ok := after[a]; ok {
					t.Errorf("lease %s survived the reader's DEL", a)
				}
			}
			if len(after) != 2 {
				t.Errorf("leases %v, want ctr-new's two", after)
			}
		})
	}

	t.Run("legacy lease", func(t *testing.T) {
		n := newHLNet(t, "10.214.61.0/24")
		conf := n.netconf(v, nil)
		if out, err := hlRun(t, "host-local", "ADD", "ctr-x", conf); err != nil {
			t.Fatalf("ADD: %v: %s", err, out)
		}
		// As a host-local from before ifnames were recorded left it.
		if err := os.WriteFile(filepath.Join(n.dir(), "10.214.61.100"), []byte("ctr-old"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, bin := range []string{"host-local", ref} {
			if out, err := hlRun(t, bin, "CHECK", "ctr-old", conf); err != nil {
				t.Errorf("%s CHECK of a legacy lease: %v: %s", bin, err, out)
			}
		}
		if out, err := hlRun(t, "host-local", "DEL", "ctr-old", conf); err != nil {
			t.Fatalf("DEL: %v: %s", err, out)
		}
		if l := n.leases(t); len(l) != 1 {
			t.Errorf("leases after DEL of the legacy one: %v", l)
		}
	})

	// Both plugins at once on one network: they must exclude each other through the same lock.
	t.Run("mixed concurrent", func(t *testing.T) {
		const each = 12
		n := newHLNet(t, "10.214.62.0/24")
		conf := n.netconf(v, nil)
		type res struct {
			out []byte
			err error
		}
		results := make([]res, 2*each)
		var wg sync.WaitGroup
		for i := range 2 * each {
			bin := "host-local"
			if i%2 == 1 {
				bin = ref
			}
			wg.Go(func() {
				out, err := hlRun(t, bin, "ADD", fmt.Sprintf("ctr-m%d", i), conf)
				results[i] = res{out, err}
			})
		}
		wg.Wait()
		seen := map[netip.Addr]int{}
		for i, r := range results {
			if r.err != nil {
				t.Errorf("ADD %d: %v: %s", i, r.err, r.out)
				continue
			}
			a := resultAddrs(t, v, r.out)[0].Addr()
			if j, dup := seen[a]; dup {
				t.Errorf("ADDs %d and %d both got %s", j, i, a)
			}
			seen[a] = i
		}
		if l := n.leases(t); len(l) != 2*each {
			t.Errorf("%d leases, want %d", len(l), 2*each)
		}
	})
}

// BenchmarkHostLocalAdd times one ADD+DEL process pair of each implementation on the same store
// layout: go test ./test/integration -run '^$' -bench HostLocal.
func BenchmarkHostLocalAdd(b *testing.B) {
	ref := filepath.Join(harness.ReferencePlugin(b, "host-local"), "host-local")
	var perOp [2]time.Duration
	for i, bin := range []string{filepath.Join(harness.PluginDir(b), "host-local"), ref} {
		name := []string{"netloom", "reference"}[i]
		b.Run(name, func(b *testing.B) {
			dataDir := b.TempDir()
			conf := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bench","type":"host-local","ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.214.70.0/24"}],[{"subnet":"fd14:70::/64"}]]}}`, dataDir))
			start := time.Now()
			for k := 0; b.Loop(); k++ {
				id := fmt.Sprintf("ctr-%d", k)
				env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": id, "CNI_NETNS": hlNetns, "CNI_IFNAME": "eth0"}
				if out, err := harness.RunPlugin(b, bin, env, conf); err != nil {
					b.Fatalf("ADD: %v: %s", err, out)
				}
				env["CNI_COMMAND"] = "DEL"
				if out, err := harness.RunPlugin(b, bin, env, conf); err != nil {
					b.Fatalf("DEL: %v: %s", err, out)
				}
			}
			perOp[i] = time.Since(start) / time.Duration(b.N)
		})
	}
	if perOp[1] > 0 {
		b.Logf("ADD+DEL per attachment: netloom %v, reference %v, ratio %.2f", perOp[0], perOp[1], float64(perOp[0])/float64(perOp[1]))
	}
}
