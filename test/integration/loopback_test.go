package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

// loopbackConf is loopback's network config in cniVersion v, under a network name of its own.
func loopbackConf(v string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":%q,"name":%q,"type":"loopback"}`, v, harness.Unique("lo"))
}

// loopbackEnv is the environment of a direct exec of the plugin.
func loopbackEnv(command, netnsPath string) map[string]string {
	return map[string]string{"CNI_COMMAND": command, "CNI_CONTAINERID": "ctr-lo", "CNI_NETNS": netnsPath, "CNI_IFNAME": "eth0"}
}

// loIsUp reports whether lo is administratively up inside n.
func loIsUp(t *testing.T, n harness.NetNS) bool {
	t.Helper()
	var up bool
	if err := n.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		up = lo.Attrs().Flags&net.FlagUp != 0
		return nil
	}); err != nil {
		t.Fatalf("netns %s: lo: %v", n.Name, err)
	}
	return up
}

// requireLoopbackWorks asserts that lo is up in n and that both loopback addresses answer a ping there.
func requireLoopbackWorks(t *testing.T, n harness.NetNS) {
	t.Helper()
	if !loIsUp(t, n) {
		t.Fatal("lo is down")
	}
	for _, a := range []string{"127.0.0.1", "::1"} {
		if err := harness.Ping(t, n, a); err != nil {
			t.Errorf("ping %s inside the pod: %v", a, err)
		}
	}
}

// requireLoopbackResult asserts that r reports lo in n with 127.0.0.1/8 and ::1/128.
func requireLoopbackResult(t *testing.T, r types.Result, n harness.NetNS) {
	t.Helper()
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatalf("result %v does not convert: %v", r, err)
	}
	if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "lo" || res.Interfaces[0].Sandbox != n.Path {
		t.Errorf("interfaces %+v, want only lo in %s", res.Interfaces, n.Path)
	}
	var got []string
	for _, ip := range res.IPs {
		got = append(got, ip.Address.String())
	}
	slices.Sort(got)
	if want := []string{"127.0.0.1/8", "::1/128"}; !slices.Equal(got, want) {
		t.Errorf("result IPs %v, want %v", got, want)
	}
}

// Through libcni, as containerd calls it, in every result version a conflist can have.
func TestLoopbackEveryCNIVersion(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			rt := harness.NewRuntime(t)
			conf := loopbackConf(v)
			n := harness.NewNetNS(t, "lo")
			if loIsUp(t, n) {
				t.Fatal("a fresh namespace already has lo up; the test would prove nothing")
			}
			r, err := rt.Add(t, conf, "ctr-lo", n.Path, "eth0", nil)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if r.Version() != v {
				t.Errorf("result version %s, want %s", r.Version(), v)
			}
			requireLoopbackResult(t, r, n)
			requireLoopbackWorks(t, n)
			if v != "0.3.0" && v != "0.3.1" { // CHECK exists from 0.4.0 on
				if err := rt.Check(t, conf, "ctr-lo", n.Path, "eth0", nil); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			for i := range 2 {
				if err := rt.Del(t, conf, "ctr-lo", n.Path, "eth0", nil); err != nil {
					t.Fatalf("DEL #%d: %v", i+1, err)
				}
			}
			if loIsUp(t, n) {
				t.Error("lo is still up after DEL")
			}
			if err := harness.Ping(t, n, "127.0.0.1"); err == nil {
				t.Error("ping 127.0.0.1 still works after DEL")
			}
		})
	}
}

// The versions before conflists existed, executed directly: the result is in the old ip4/ip6 shape.
func TestLoopbackLegacyVersions(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, v := range []string{"0.1.0", "0.2.0"} {
		t.Run(v, func(t *testing.T) {
			n := harness.NewNetNS(t, "lo")
			out, err := harness.RunPlugin(t, "loopback", loopbackEnv("ADD", n.Path), loopbackConf(v))
			if err != nil {
				t.Fatalf("ADD: %v: %s", err, out)
			}
			var res struct {
				CNIVersion string              `json:"cniVersion"`
				IP4        struct{ IP string } `json:"ip4"`
				IP6        struct{ IP string } `json:"ip6"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("result %s: %v", out, err)
			}
			if res.CNIVersion != v || res.IP4.IP != "127.0.0.1/8" || res.IP6.IP != "::1/128" {
				t.Errorf("result %s, want cniVersion %s with ip4 127.0.0.1/8 and ip6 ::1/128", out, v)
			}
			requireLoopbackWorks(t, n)
			if out, err := harness.RunPlugin(t, "loopback", loopbackEnv("DEL", n.Path), loopbackConf(v)); err != nil {
				t.Fatalf("DEL: %v: %s", err, out)
			}
			if loIsUp(t, n) {
				t.Error("lo is still up after DEL")
			}
		})
	}
}

// DEL succeeds whatever is left of the pod: its namespace gone, or no namespace given at all.
func TestLoopbackDelIdempotent(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	rt := harness.NewRuntime(t)
	conf := loopbackConf("1.1.0")
	n := harness.NewNetNS(t, "lo")
	if _, err := rt.Add(t, conf, "ctr-lo", n.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	path := n.Path
	n.Delete(t)
	for i := range 2 {
		if err := rt.Del(t, conf, "ctr-lo", path, "eth0", nil); err != nil {
			t.Fatalf("DEL #%d after the namespace was removed: %v", i+1, err)
		}
	}
	never := filepath.Join(t.TempDir(), "never-existed")
	for _, netnsPath := range []string{"", never} {
		if out, err := harness.RunPlugin(t, "loopback", loopbackEnv("DEL", netnsPath), conf); err != nil {
			t.Errorf("DEL with CNI_NETNS=%q: %v: %s", netnsPath, err, out)
		}
	}
}

func TestLoopbackCheckDetectsDown(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	rt := harness.NewRuntime(t)
	conf := loopbackConf("1.1.0")
	n := harness.NewNetNS(t, "lo")
	if _, err := rt.Add(t, conf, "ctr-lo", n.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, conf, "ctr-lo", n.Path, "eth0", nil) })
	if err := rt.Check(t, conf, "ctr-lo", n.Path, "eth0", nil); err != nil {
		t.Fatalf("CHECK on a healthy pod: %v", err)
	}
	n.Run(t, "ip", "link", "set", "lo", "down")
	err := rt.Check(t, conf, "ctr-lo", n.Path, "eth0", nil)
	if err == nil || !strings.Contains(err.Error(), "down") {
		t.Fatalf("CHECK with lo down: %v, want an error saying lo is down", err)
	}
}

// STATUS always reports ready; GC, with or without the pod among the valid attachments, leaves the pod
// alone: loopback keeps no state outside the pod's namespace.
func TestLoopbackStatusAndGC(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	rt := harness.NewRuntime(t)
	conf := loopbackConf("1.1.0")
	if err := rt.Status(t, conf); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	n := harness.NewNetNS(t, "lo")
	if _, err := rt.Add(t, conf, "ctr-lo", n.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, conf, "ctr-lo", n.Path, "eth0", nil) })
	if err := rt.GC(t, conf, []types.GCAttachment{{ContainerID: "ctr-lo", IfName: "eth0"}}); err != nil {
		t.Fatalf("GC with the pod valid: %v", err)
	}
	if err := rt.GCOnly(t, conf, nil); err != nil {
		t.Fatalf("GC with no valid attachment: %v", err)
	}
	requireLoopbackWorks(t, n)
	if err := rt.Check(t, conf, "ctr-lo", n.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK after GC: %v", err)
	}

	// The same commands executed directly print nothing and exit 0.
	gc := []byte(`{"cniVersion":"1.1.0","name":"gc","type":"loopback","cni.dev/valid-attachments":[]}`)
	for cmd, stdin := range map[string][]byte{"STATUS": conf, "GC": gc} {
		out, err := harness.RunPlugin(t, "loopback", map[string]string{"CNI_COMMAND": cmd}, stdin)
		if err != nil || len(out) != 0 {
			t.Errorf("exec %s: %v, stdout %q", cmd, err, out)
		}
	}
}

// Chained after another plugin, loopback brings lo up and hands the previous result on unchanged.
func TestLoopbackChainedPassesPrevResult(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	n := harness.NewNetNS(t, "lo")
	prev := `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"` + n.Path + `"}],` +
		`"ips":[{"address":"10.213.250.3/24","interface":0}]}`
	conf := []byte(`{"cniVersion":"1.0.0","name":"chain","type":"loopback","prevResult":` + prev + `}`)
	out, err := harness.RunPlugin(t, "loopback", loopbackEnv("ADD", n.Path), conf)
	if err != nil {
		t.Fatalf("ADD: %v: %s", err, out)
	}
	var got, want any
	if err := json.Unmarshal([]byte(prev), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("chained ADD printed %s, want the prevResult %s", out, prev)
	}
	requireLoopbackWorks(t, n)
}

// Bad input gets a CNI error on stdout with the code a runtime can act on, and a non-zero exit.
func TestLoopbackBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	n := harness.NewNetNS(t, "lo")
	notNS := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notNS, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	good := loopbackConf("1.1.0")
	for _, tc := range []struct {
		name, command, netns string
		conf                 []byte
		code                 int
		naming               string
	}{
		{name: "not JSON", command: "ADD", netns: n.Path, conf: []byte(`{"cniVersion":`), code: 6},
		{name: "name of the wrong type", command: "ADD", netns: n.Path, conf: []byte(`{"cniVersion":"1.1.0","name":7,"type":"loopback"}`), code: 6, naming: "name"},
		{name: "unknown cniVersion", command: "ADD", netns: n.Path, conf: []byte(`{"cniVersion":"9.9.9","name":"x","type":"loopback"}`), code: 1},
		{name: "no netns", command: "ADD", netns: "", conf: good, code: 4, naming: "CNI_NETNS"},
		{name: "netns that does not exist", command: "ADD", netns: "/run/netns/nltest-does-not-exist", conf: good, code: 4, naming: "CNI_NETNS"},
		{name: "netns that is a plain file", command: "ADD", netns: notNS, conf: good, code: 4, naming: "CNI_NETNS"},
		{name: "CHECK without netns", command: "CHECK", netns: "", conf: good, code: 4, naming: "CNI_NETNS"},
		{name: "prevResult that does not parse", command: "ADD", netns: n.Path, conf: []byte(`{"cniVersion":"1.0.0","name":"x","type":"loopback","prevResult":{"ips":[{"address":"bogus"}]}}`), code: 7, naming: "prevResult"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := harness.RunPlugin(t, "loopback", loopbackEnv(tc.command, tc.netns), tc.conf)
			if err == nil {
				t.Fatalf("exit 0, printed %s", out)
			}
			var e types.Error
			if jerr := json.Unmarshal(out, &e); jerr != nil {
				t.Fatalf("stdout %q is not a CNI error: %v (%v)", out, jerr, err)
			}
			if int(e.Code) != tc.code || !strings.Contains(e.Msg+e.Details, tc.naming) {
				t.Errorf("error %+v, want code %d naming %q", e, tc.code, tc.naming)
			}
		})
	}
	if loIsUp(t, n) {
		t.Error("a failed ADD brought lo up")
	}
}
