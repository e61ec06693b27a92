package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/test/harness"
)

// Scenarios every attachment plugin with IPAM and "ipMasq" (bridge, ptp) must pass, run by each
// plugin's tests with its own network.

// masqRoundTrip: ADD installs masquerade rules naming the container in the configured backend, CHECK
// passes, DEL removes every rule of the network.
func masqRoundTrip(t *testing.T, network string, list []byte, backend string) {
	t.Helper()
	rt := harness.NewRuntime(t)
	n := harness.NewNetNS(t, "m")
	if _, err := rt.Add(t, list, "ctr-m", n.Path, "eth0", nil); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if rules := masqRulesFor(t, network); !strings.Contains(rules, "ctr-m") {
		t.Errorf("no %s masquerade rule names the container:\n%s", backend, rules)
	}
	if err := rt.Check(t, list, "ctr-m", n.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := rt.Del(t, list, "ctr-m", n.Path, "eth0", nil); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if rules := masqRulesFor(t, network); rules != "" {
		t.Errorf("rules left after DEL:\n%s", rules)
	}
}

// gcReleasesLeaked: of two pods with ipMasq, the runtime loses one (its namespace is gone, no DEL
// comes); GC with only the other valid releases the lost one's lease and rules and keeps the live one's,
// which still passes CHECK. leases lists the network's lease files.
func gcReleasesLeaked(t *testing.T, network string, list []byte, leases func(*testing.T) []string) {
	t.Helper()
	rt := harness.NewRuntime(t)
	live, leaked := harness.NewNetNS(t, "gl"), harness.NewNetNS(t, "gx")
	if _, err := rt.Add(t, list, "ctr-live", live.Path, "eth0", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-live", live.Path, "eth0", nil) })
	if _, err := rt.Add(t, list, "ctr-leaked", leaked.Path, "eth0", nil); err != nil {
		t.Fatal(err)
	}
	leaked.Delete(t)
	if got := len(leases(t)); got != 2 {
		t.Fatalf("%d leases before GC, want 2", got)
	}
	if err := rt.GC(t, list, []types.GCAttachment{{ContainerID: "ctr-live", IfName: "eth0"}}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if got := len(leases(t)); got != 1 {
		t.Errorf("%d leases after GC, want 1 (the live pod's)", got)
	}
	rules := masqRulesFor(t, network)
	if strings.Contains(rules, "ctr-leaked") {
		t.Errorf("GC left the leaked pod's masquerade rules:\n%s", rules)
	}
	if !strings.Contains(rules, "ctr-live") {
		t.Errorf("GC removed the live pod's masquerade rules:\n%s", rules)
	}
	if err := rt.Check(t, list, "ctr-live", live.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK of the live pod after GC: %v", err)
	}
	if err := rt.Status(t, list); err != nil {
		t.Errorf("STATUS: %v", err)
	}
}

// cniVersions are the versions whose results a runtime may ask for; CHECK exists from 0.4.0 on.
var cniVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// versionRoundTrip: in CNI version v, ADD (the result in v), CHECK where v has it and DEL through
// libcni, then ADD and DEL by executing the plugin directly, as a runtime without libcni would; no lease
// is left. list is the network as a conflist of v, netconf as one plugin's config of v.
func versionRoundTrip(t *testing.T, plugin, v string, list, netconf []byte, leases func(*testing.T) []string) {
	t.Helper()
	rt := harness.NewRuntime(t)
	n := harness.NewNetNS(t, "v")
	r, err := rt.Add(t, list, "ctr-v", n.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if r.Version() != v {
		t.Errorf("libcni result version %s, want %s", r.Version(), v)
	}
	if v != "0.3.0" && v != "0.3.1" {
		if err := rt.Check(t, list, "ctr-v", n.Path, "eth0", nil); err != nil {
			t.Errorf("CHECK: %v", err)
		}
	}
	if err := rt.Del(t, list, "ctr-v", n.Path, "eth0", nil); err != nil {
		t.Errorf("DEL: %v", err)
	}
	n2 := harness.NewNetNS(t, "w")
	env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-w", "CNI_NETNS": n2.Path, "CNI_IFNAME": "eth0"}
	out, err := harness.RunPlugin(t, plugin, env, netconf)
	if err != nil {
		t.Fatalf("exec ADD: %v: %s", err, out)
	}
	var got struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(out, &got); err != nil || got.CNIVersion != v {
		t.Errorf("exec ADD printed cniVersion %q (%v), want %s: %s", got.CNIVersion, err, v, out)
	}
	env["CNI_COMMAND"] = "DEL"
	if out, err := harness.RunPlugin(t, plugin, env, netconf); err != nil {
		t.Errorf("exec DEL: %v: %s", err, out)
	}
	if l := leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
}
