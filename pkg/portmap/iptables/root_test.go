package iptables

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/xtables"
	"github.com/netloom/netloom/test/harness"
)

// Root tests: each runs in network namespaces of its own, against both builds of iptables.

var variants = []xtables.Variant{xtables.VariantLegacy, xtables.VariantNFT}

func saveBin(v xtables.Variant, f xtables.Family) string {
	bin, _ := xtables.Config{Variant: v}.Binaries(f)
	return bin
}

// countingTools counts restores, to show that an Add or Remove with nothing to do writes nothing.
type countingTools struct {
	xtables.Tools
	restores atomic.Int32
}

func (c *countingTools) Restore(f xtables.Family, input string) error {
	c.restores.Add(1)
	return c.Tools.Restore(f, input)
}

// testConfig is the Config of variant v with netloom's lock in dir, so that tests leave nothing in /run.
// Mappers that must exclude each other share dir.
func testConfig(dir string, v xtables.Variant) Config {
	return Config{Config: xtables.Config{Variant: v}, LockFile: filepath.Join(dir, "lock")}
}

func newCounting(dir string, v xtables.Variant) (*Mapper, *countingTools) {
	m := NewWithConfig(testConfig(dir, v))
	c := &countingTools{Tools: m.run.Tools}
	m.run.Tools = c
	return m, c
}

// dump returns both families' nat tables as iptables-save prints them in n.
func dump(t *testing.T, n harness.NetNS, v xtables.Variant) [2]string {
	t.Helper()
	var out [2]string
	for _, f := range xtables.Families() {
		text := n.Run(t, saveBin(v, f), "-t", natTable)
		var keep []string
		for _, l := range strings.Split(text, "\n") {
			if !strings.HasPrefix(l, "#") {
				keep = append(keep, l)
			}
		}
		out[f] = strings.Join(keep, "\n")
	}
	return out
}

func eachVariant(t *testing.T, f func(t *testing.T, v xtables.Variant)) {
	harness.RequireRoot(t)
	for _, v := range variants {
		t.Run(string(v), func(t *testing.T) { f(t, v) })
	}
}

// TestRootInstall installs mappings of both families and compares what iptables-save shows with what the
// fake (and so the golden tests) say, then removes them twice.
func TestRootInstall(t *testing.T) {
	eachVariant(t, func(t *testing.T, v xtables.Variant) {
		n := harness.NewNetNS(t, "pmi")
		m, c := newCounting(t.TempDir(), v)
		ms := mappings(t, "tcp *:8080 10.22.0.5/24:80", "udp 192.0.2.1:53 10.22.0.5/24:5353", "sctp *:9000 10.22.0.5/24:9000",
			"tcp *:8080 [fd00::5/64]:80", "tcp [2001:db8::1]:8443 [fd00::5/64]:443")
		o := defaults
		o.ConditionsV4 = []string{"!", "-s", "192.0.2.99"}
		if err := n.Do(func() error { return m.Add(keyA, ms, o) }); err != nil {
			t.Fatal(err)
		}
		fake, f := newFakeMapper(t)
		if err := fake.Add(keyA, ms, o); err != nil {
			t.Fatal(err)
		}
		got := dump(t, n, v)
		for fam := range got {
			real := parseSave(t, got[fam])
			for chain := range f.Tables[fam].Chains {
				rules := f.Tables[fam].Rules[chain]
				if !real.Chains[chain] {
					t.Errorf("%v: chain %s missing:\n%s", xtables.Family(fam), chain, got[fam])
				}
				if !slices.EqualFunc(real.Rules[chain], rules, func(a, b xtables.Rule) bool { return slices.Equal(a, b) }) {
					t.Errorf("%v: chain %s is\n%q\nwant (as the fake has it)\n%q", xtables.Family(fam), chain, real.Rules[chain], rules)
				}
			}
		}
		if !strings.Contains(got[ipv4], `-A `+chA+` -s 10.22.0.0/24 -p tcp -m tcp --dport 8080 -m comment --comment `+cA+` -j CNI-HOSTPORT-SETMARK`) {
			t.Errorf("hairpin mark for the pod subnet missing:\n%s", got[ipv4])
		}
		check := func() error { return n.Do(func() error { return m.Check(keyA, ms, o) }) }
		if err := check(); err != nil {
			t.Errorf("Check: %v", err)
		}
		before := c.restores.Load()
		if err := n.Do(func() error { return m.Add(keyA, ms, o) }); err != nil {
			t.Fatal(err)
		}
		if d := c.restores.Load() - before; d != 0 {
			t.Errorf("an unchanged Add ran %d restores", d)
		}
		// The rules survive an iptables-save | iptables-restore round trip.
		for _, fam := range xtables.Families() {
			save, restore := xtables.Config{Variant: v}.Binaries(fam)
			n.Run(t, "sh", "-c", save+" | "+restore)
		}
		if err := check(); err != nil {
			t.Errorf("Check after save | restore: %v", err)
		}
		for range 2 {
			if err := n.Do(func() error { return m.Remove(keyA, nil) }); err != nil {
				t.Fatal(err)
			}
		}
		for fam, s := range dump(t, n, v) {
			if strings.Contains(s, "CNI-DN-") || strings.Contains(s, "c1") {
				t.Errorf("%v after Remove:\n%s", xtables.Family(fam), s)
			}
		}
		before = c.restores.Load()
		if err := n.Do(func() error { return m.Remove(keyA, nil) }); err != nil {
			t.Fatal(err)
		}
		if d := c.restores.Load() - before; d != 0 {
			t.Errorf("a Remove with nothing to remove ran %d restores", d)
		}
		if err := check(); err == nil {
			t.Error("Check passes after Remove")
		}
	})
}

func TestRootConflict(t *testing.T) {
	eachVariant(t, func(t *testing.T, v xtables.Variant) {
		n := harness.NewNetNS(t, "pmc")
		m := NewWithConfig(testConfig(t.TempDir(), v))
		if err := n.Do(func() error {
			return m.Add(keyA, mappings(t, "tcp *:8080 10.22.0.5/24:80", "tcp *:8080 [fd00::5/64]:80"), defaults)
		}); err != nil {
			t.Fatal(err)
		}
		before := dump(t, n, v)
		err := n.Do(func() error {
			return m.Add(keyB, mappings(t, "tcp *:9090 10.22.0.6/24:80", "tcp *:8080 [fd00::6/64]:80"), defaults)
		})
		var c *portmap.ConflictError
		if !errors.As(err, &c) || c.Owner != "mynet/c1/eth0" || c.Key != (portmap.HostKey{Protocol: "tcp", HostPort: 8080}) {
			t.Fatalf("Add = %v, want a conflict on tcp/8080 with mynet/c1/eth0", err)
		}
		if after := dump(t, n, v); after != before {
			t.Errorf("a conflicting Add changed the tables:\n%s\n%s", after[0], after[1])
		}
	})
}

// TestRootSameKeyRace: attachments asking for one host port at once; exactly one gets it.
func TestRootSameKeyRace(t *testing.T) {
	eachVariant(t, func(t *testing.T, v xtables.Variant) {
		n := harness.NewNetNS(t, "pmr")
		const pods = 8
		lock := t.TempDir()
		errs := make([]error, pods)
		var wg sync.WaitGroup
		for i := range pods {
			wg.Go(func() {
				k := firewall.Key{Network: "racenet", ContainerID: fmt.Sprintf("pod%d", i), IfName: "eth0"}
				ms := mappings(t, fmt.Sprintf("tcp *:8080 10.55.0.%d/24:80", i+2))
				errs[i] = n.Do(func() error { return NewWithConfig(testConfig(lock, v)).Add(k, ms, defaults) })
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			var c *portmap.ConflictError
			switch {
			case err == nil:
				won++
			case !errors.As(err, &c):
				t.Errorf("pod %d: %v", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d attachments got tcp/8080, want exactly 1: %v", won, errs)
		}
		if got := strings.Count(dump(t, n, v)[ipv4], "-j DNAT"); got != 1 {
			t.Errorf("%d DNAT rules, want 1", got)
		}
	})
}

// TestRootConcurrent: 32 pods added at once, each by its own Mapper on its own thread running its own
// iptables processes, as 32 plugin runs would; then removed at once.
func TestRootConcurrent(t *testing.T) {
	eachVariant(t, func(t *testing.T, v xtables.Variant) {
		n := harness.NewNetNS(t, "pmk")
		const pods = 32
		lock := t.TempDir()
		key := func(i int) firewall.Key {
			return firewall.Key{Network: "racenet", ContainerID: fmt.Sprintf("pod%d", i), IfName: "eth0"}
		}
		ms := func(i int) []portmap.Mapping {
			return mappings(t, fmt.Sprintf("tcp *:%d 10.55.0.%d/24:80", 8000+i, i+2),
				fmt.Sprintf("udp *:%d [fd55::%x/64]:53", 5300+i, i+2))
		}
		all := func(f func(i int, m *Mapper) error) {
			t.Helper()
			errs := make([]error, pods)
			var wg sync.WaitGroup
			for i := range pods {
				wg.Go(func() { errs[i] = n.Do(func() error { return f(i, NewWithConfig(testConfig(lock, v))) }) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("pod %d: %v", i, err)
				}
			}
		}
		all(func(i int, m *Mapper) error { return m.Add(key(i), ms(i), defaults) })
		all(func(i int, m *Mapper) error { return m.Check(key(i), ms(i), defaults) })
		d := dump(t, n, v)
		for fam := range d {
			if got := strings.Count(d[fam], "-j DNAT"); got != pods {
				t.Errorf("%v: %d DNAT rules, want %d", xtables.Family(fam), got, pods)
			}
		}
		all(func(i int, m *Mapper) error { return m.Remove(key(i), nil) })
		for fam, s := range dump(t, n, v) {
			if strings.Contains(s, "CNI-DN-") {
				t.Errorf("%v: chains left after concurrent Removes:\n%s", xtables.Family(fam), s)
			}
		}
	})
}

func TestRootGC(t *testing.T) {
	eachVariant(t, func(t *testing.T, v xtables.Variant) {
		n := harness.NewNetNS(t, "pmg")
		m := NewWithConfig(testConfig(t.TempDir(), v))
		adds := []struct {
			k  firewall.Key
			ms []portmap.Mapping
		}{
			{keyA, mappings(t, "tcp *:8000 10.22.0.5/24:80", "tcp *:8000 [fd00::5/64]:80")},
			{keyA1, mappings(t, "tcp *:8001 10.23.0.5/24:80")},
			{keyB, mappings(t, "tcp *:9090 10.22.0.6/24:80", "tcp *:9090 [fd00::6/64]:80")},
			{keyC, mappings(t, "tcp *:7070 10.99.0.5/24:80")},
		}
		err := n.Do(func() error {
			for _, a := range adds {
				if err := m.Add(a.k, a.ms, defaults); err != nil {
					return err
				}
			}
			return m.GC("mynet", map[conf.Attachment]bool{keyA.Attachment(): true})
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range adds {
			err := n.Do(func() error { return m.Check(a.k, a.ms, defaults) })
			if gone := a.k == keyA1 || a.k == keyB; gone != (err != nil) {
				t.Errorf("%v after GC: Check = %v", a.k, err)
			}
		}
		if s := dump(t, n, v); strings.Contains(s[0]+s[1], `\"c2\"`) || strings.Contains(s[0], `\"net1\"`) {
			t.Errorf("GC left rules of invalid attachments:\n%s\n%s", s[0], s[1])
		}
	})
}

// TestRootReference runs the reference portmap v1.9.1 (iptables backend, the system's iptables) beside
// this backend on one node: each side's DEL removes the other's rules, and the reference's mappings count
// as owned.
func TestRootReference(t *testing.T) {
	harness.RequireRoot(t)
	ref := filepath.Join(harness.ReferencePlugin(t, "portmap"), "portmap")
	n := harness.NewNetNS(t, "pmref")
	pod := harness.NewNetNS(t, "pmrefp") // the reference refuses a CNI_NETNS that is its own
	netconf, err := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": "mynet", "type": "portmap", "backend": "iptables",
		"runtimeConfig": map[string]any{"portMappings": []map[string]any{{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}}},
		"prevResult":    map[string]any{"cniVersion": "1.0.0", "ips": []map[string]any{{"address": "10.22.0.9/24"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	runRef := func(cmd string) {
		t.Helper()
		err := n.Do(func() error {
			c := exec.Command(ref)
			c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=ref1", "CNI_NETNS=" + pod.Path, "CNI_IFNAME=eth0",
				"CNI_PATH=/nonexistent", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
			c.Stdin = strings.NewReader(string(netconf))
			if out, err := c.CombinedOutput(); err != nil {
				return fmt.Errorf("reference portmap %s: %w: %s", cmd, err, out)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	m := NewWithConfig(testConfig(t.TempDir(), xtables.VariantSystem))
	ms := mappings(t, "tcp *:8080 10.22.0.9/24:80")

	runRef("ADD")
	t.Logf("after the reference's ADD:\n%s", dump(t, n, xtables.VariantSystem)[ipv4])
	err = n.Do(func() error { return m.Add(keyB, mappings(t, "tcp *:8080 10.22.0.6/24:80"), defaults) })
	var c *portmap.ConflictError
	if !errors.As(err, &c) || c.Owner != "mynet/ref1" {
		t.Errorf("Add over the reference's mapping = %v, want a conflict with mynet/ref1", err)
	}
	if err := n.Do(func() error { return m.Remove(keyRef, nil) }); err != nil {
		t.Fatal(err)
	}
	if s := dump(t, n, xtables.VariantSystem)[ipv4]; strings.Contains(s, "CNI-DN-") {
		t.Errorf("our Remove left the reference's rules:\n%s", s)
	}

	if err := n.Do(func() error { return m.Add(keyRef, ms, defaults) }); err != nil {
		t.Fatal(err)
	}
	runRef("DEL")
	if s := dump(t, n, xtables.VariantSystem)[ipv4]; strings.Contains(s, "CNI-DN-") || strings.Contains(s, "ref1") {
		t.Errorf("the reference's DEL left our rules:\n%s", s)
	}

	runRef("ADD")
	if err := n.Do(func() error {
		return m.GC("mynet", map[conf.Attachment]bool{{ContainerID: "ref1", IfName: "net9"}: true})
	}); err != nil {
		t.Fatal(err)
	}
	if s := dump(t, n, xtables.VariantSystem)[ipv4]; !strings.Contains(s, "CNI-DN-") {
		t.Errorf("GC removed the reference's mapping of a valid container:\n%s", s)
	}
	if err := n.Do(func() error { return m.GC("mynet", nil) }); err != nil {
		t.Fatal(err)
	}
	if s := dump(t, n, xtables.VariantSystem)[ipv4]; strings.Contains(s, "CNI-DN-") {
		t.Errorf("GC left the reference's mapping of a gone container:\n%s", s)
	}
}

// TestRootTraffic forwards a host port of a "node" namespace to a pod behind a bridge and connects to
// it: from a client namespace routed through the node (PREROUTING), from the node to its own address
// and to 127.0.0.1 (OUTPUT; the latter marked and masqueraded), from a neighbour pod on the same bridge
// and from the pod itself through hairpin (both masqueraded because they come from the pod subnet).
func TestRootTraffic(t *testing.T) {
	eachVariant(t, func(t *testing.T, v xtables.Variant) {
		node, pod, pod2, client := harness.NewNetNS(t, "pmtn"), harness.NewNetNS(t, "pmtp"), harness.NewNetNS(t, "pmtq"), harness.NewNetNS(t, "pmtc")
		for _, c := range [][]string{
			{"ip", "link", "add", "br0", "type", "bridge"},
			{"ip", "link", "add", "vp1", "master", "br0", "type", "veth", "peer", "name", "eth0", "netns", pod.Name},
			{"ip", "link", "add", "vp2", "master", "br0", "type", "veth", "peer", "name", "eth0", "netns", pod2.Name},
			{"ip", "link", "add", "vc", "type", "veth", "peer", "name", "eth0", "netns", client.Name},
			{"bridge", "link", "set", "dev", "vp1", "hairpin", "on"},
			{"ip", "addr", "add", "10.77.0.1/24", "dev", "br0"},
			{"ip", "addr", "add", "10.78.0.1/24", "dev", "vc"},
			{"ip", "link", "set", "br0", "up"},
			{"ip", "link", "set", "vp1", "up"},
			{"ip", "link", "set", "vp2", "up"},
			{"ip", "link", "set", "vc", "up"},
			{"ip", "link", "set", "lo", "up"},
			{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
			{"sysctl", "-qw", "net.ipv4.conf.br0.route_localnet=1"},
			// Without br_netfilter's help (where it is loaded, conntrack would also un-NAT a neighbour
			// pod's reply crossing the bridge), only the masquerade brings that reply back to the node.
			{"sh", "-c", "! test -e /proc/sys/net/bridge/bridge-nf-call-iptables || sysctl -qw net.bridge.bridge-nf-call-iptables=0"},
		} {
			node.Run(t, c...)
		}
		for _, x := range []struct {
			ns       harness.NetNS
			addr, gw string
		}{{pod, "10.77.0.5/24", "10.77.0.1"}, {pod2, "10.77.0.6/24", "10.77.0.1"}, {client, "10.78.0.2/24", "10.78.0.1"}} {
			x.ns.Run(t, "ip", "addr", "add", x.addr, "dev", "eth0", "nodad")
			x.ns.Run(t, "ip", "link", "set", "eth0", "up")
			x.ns.Run(t, "ip", "link", "set", "lo", "up")
			x.ns.Run(t, "ip", "route", "add", "default", "via", x.gw)
		}
		server := exec.Command("ip", "netns", "exec", pod.Name, "socat", "TCP-LISTEN:80,fork,reuseaddr", "SYSTEM:echo pod")
		if err := server.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = server.Process.Kill()
			_ = server.Wait()
		})
		ms := mappings(t, "tcp *:8080 10.77.0.5/24:80")
		m := NewWithConfig(testConfig(t.TempDir(), v))
		if err := node.Do(func() error { return m.Add(keyA, ms, defaults) }); err != nil {
			t.Fatal(err)
		}
		connect := func(from harness.NetNS, addr string) (string, error) {
			var out string
			var err error
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				out, err = from.Exec("socat", "-T2", "STDIO", "TCP:"+addr+",connect-timeout=1")
				if err == nil && strings.TrimSpace(out) == "pod" {
					return out, nil
				}
			}
			return out, err
		}
		for _, c := range []struct {
			name string
			from harness.NetNS
			addr string
		}{
			{"from another host", client, "10.78.0.1:8080"},
			{"from the node to its own address", node, "10.78.0.1:8080"},
			{"from the node to 127.0.0.1", node, "127.0.0.1:8080"},
			{"from a neighbour pod on the bridge", pod2, "10.78.0.1:8080"},
			{"from the pod itself (hairpin)", pod, "10.78.0.1:8080"},
		} {
			if out, err := connect(c.from, c.addr); err != nil || strings.TrimSpace(out) != "pod" {
				t.Errorf("%s (%s): %q, %v", c.name, c.addr, out, err)
			}
		}
		if err := node.Do(func() error { return m.Remove(keyA, nil) }); err != nil {
			t.Fatal(err)
		}
		if out, err := client.Exec("socat", "-T1", "STDIO", "TCP:10.78.0.1:8080,connect-timeout=1"); err == nil {
			t.Errorf("still forwarded after Remove: %q", out)
		}
	})
}

func TestRootAvailable(t *testing.T) {
	harness.RequireRoot(t)
	n := harness.NewNetNS(t, "pma")
	err := n.Do(func() error {
		if !Available() {
			return errors.New("Available() = false on a node with iptables")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
