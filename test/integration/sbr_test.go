package integration

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/test/harness"
)

// sbrNet is bridge + host-local (with a default route) + sbr.
type sbrNet struct {
	b   *bridgeNet
	sbr map[string]any
}

func newSbrNet(t *testing.T, v6 bool, sbr map[string]any) *sbrNet {
	t.Helper()
	n := &sbrNet{b: newBridgeNet(t, v6), sbr: map[string]any{"type": "sbr"}}
	for k, v := range sbr {
		n.sbr[k] = v
	}
	return n
}

func (n *sbrNet) conflist(cniVersion string) []byte {
	// No IPAM routes: the bridge's CHECK looks for them in main, where sbr no longer keeps them (the
	// reference bridge's does the same). sbr still gives each table a default route via the gateway.
	br := n.b.plugin()
	br["isDefaultGateway"], br["isGateway"] = false, true
	out, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": n.b.Name, "plugins": []any{br, n.sbr}})
	return out
}

func (n *sbrNet) gateway4() string {
	s := n.b.Subnets[0]
	return s[:strings.LastIndex(s, ".")] + ".1"
}

func (n *sbrNet) leftovers(t *testing.T) []string {
	t.Helper()
	var out []string
	if p := n.b.ports(t); len(p) != 0 {
		out = append(out, fmt.Sprintf("bridge ports %v", p))
	}
	if l := n.b.leases(t); len(l) != 0 {
		out = append(out, fmt.Sprintf("leases %v", l))
	}
	return out
}

// podRules lists the pod's "from <addr> lookup <table>" rules of both families, without priorities.
func sourceRules(t *testing.T, pod harness.NetNS) []string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		for line := range strings.SplitSeq(pod.Run(t, "ip", fam, "rule", "show"), "\n") {
			_, rule, ok := strings.Cut(line, ":")
			if rule = strings.TrimSpace(rule); ok && strings.HasPrefix(rule, "from ") && !strings.HasPrefix(rule, "from all") {
				out = append(out, rule)
			}
		}
	}
	slices.Sort(out)
	return out
}

// podRoutes lists the pod's routes of both families in table ("main", "100", ...), without the
// kernel's own local/multicast ones.
func podRoutes(t *testing.T, pod harness.NetNS, table string) []string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		got, err := pod.Exec("ip", fam, "route", "show", "table", table)
		if err != nil && strings.Contains(got, "does not exist") {
			continue // a table with routes of the other family only
		}
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(got, "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "multicast") {
				out = append(out, expiresRE.ReplaceAllString(line, ""))
			}
		}
	}
	return out
}

var expiresRE = regexp.MustCompile(` expires \d+sec`)

// The reference's layout, proven with traffic: a rule from the pod's address to table 100, which holds
// the default route and the subnet route; main holds nothing through eth0. CHECK passes, then sees a
// missing rule; DEL twice removes the rule and the table, and the chain leaves nothing.
func TestSbrBridgeChain(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	n := newSbrNet(t, false, nil)
	list := n.conflist("1.1.0")
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "sbr")
	r, err := rt.Add(t, list, "ctr-sbr", pod.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-sbr", pod.Path, "eth0", nil) })
	ip := podAddrs(t, r)[0].Addr().String()
	gw := n.gateway4()
	if got, want := sourceRules(t, pod), []string{"from " + ip + " lookup 100"}; !slices.Equal(got, want) {
		t.Errorf("rules %v, want %v", got, want)
	}
	table := strings.Join(podRoutes(t, pod, "100"), "\n")
	for _, want := range []string{"default via " + gw + " dev eth0", n.b.Subnets[0] + " dev eth0 proto kernel scope link src " + ip} {
		if !strings.Contains(table, want) {
			t.Errorf("table 100 lacks %q:\n%s", want, table)
		}
	}
	if m := strings.Join(podRoutes(t, pod, "main"), "\n"); strings.Contains(m, "dev eth0") {
		t.Errorf("main still routes through eth0:\n%s", m)
	}
	// From the pod's address (main has no route any more): the rule sends it to table 100.
	if _, err := pod.Exec("ping", "-c1", "-W2", "-I", ip, gw); err != nil {
		t.Errorf("pod to its gateway through table 100: %v", err)
	}
	if _, err := pod.Exec("ping", "-c1", "-W2", gw); err == nil {
		t.Error("a ping without the pod's source address went out, though main holds no route")
	}
	if err := rt.Check(t, list, "ctr-sbr", pod.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	pod.Run(t, "ip", "rule", "del", "from", ip, "lookup", "100")
	if err := rt.Check(t, list, "ctr-sbr", pod.Path, "eth0", nil); err == nil || !strings.Contains(err.Error(), "no rule from "+ip) {
		t.Errorf("CHECK without the rule: %v", err)
	}
	pod.Run(t, "ip", "rule", "add", "from", ip, "lookup", "100")
	if err := rt.Status(t, list); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	if err := rt.Del(t, list, "ctr-sbr", pod.Path, "eth0", nil); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if err := rt.Del(t, list, "ctr-sbr", pod.Path, "eth0", nil); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if got := sourceRules(t, pod); len(got) != 0 {
		t.Errorf("rules left: %v", got)
	}
	if got := podRoutes(t, pod, "100"); len(got) != 0 {
		t.Errorf("table 100 left: %v", got)
	}
	if l := n.leftovers(t); len(l) != 0 {
		t.Errorf("left: %v", l)
	}
}

// Netloom's sbr makes exactly the reference's rules and tables (dual-stack: a table per address), and
// each suite's CHECK and DEL accept what the other's ADD made.
func TestSbrMatchesReference(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	ref := harness.ReferencePlugin(t, "sbr")
	layout := func(t *testing.T, pod harness.NetNS) []string {
		out := sourceRules(t, pod)
		for _, table := range []string{"main", "100", "101"} {
			for _, r := range podRoutes(t, pod, table) {
				out = append(out, table+": "+r)
			}
		}
		return out
	}
	var layouts [2][]string
	for i, tc := range []struct {
		name     string
		add, del func(rt *harness.Runtime) *harness.Runtime
	}{
		{"reference ADD, netloom CHECK and DEL",
			func(rt *harness.Runtime) *harness.Runtime { return rt.WithPath(t, ref, harness.PluginDir(t)) },
			func(rt *harness.Runtime) *harness.Runtime { return rt }},
		{"netloom ADD, reference CHECK and DEL",
			func(rt *harness.Runtime) *harness.Runtime { return rt },
			func(rt *harness.Runtime) *harness.Runtime { return rt.WithPath(t, ref, harness.PluginDir(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newSbrNet(t, true, nil)
			list := n.conflist("1.0.0")
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "sbrr")
			r, err := tc.add(rt).Add(t, list, "ctr-sbrr", pod.Path, "eth0", nil)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { _ = rt.Del(t, list, "ctr-sbrr", pod.Path, "eth0", nil) })
			// Addresses and subnets differ between the two runs: compare the shapes.
			l := layout(t, pod)
			for j, a := range podAddrs(t, r) {
				for k := range l {
					l[k] = strings.ReplaceAll(l[k], a.Addr().String(), fmt.Sprintf("ADDR%d", j))
					l[k] = strings.ReplaceAll(l[k], a.Masked().String(), fmt.Sprintf("SUBNET%d", j))
				}
			}
			gw4 := n.gateway4()
			gw6 := strings.TrimSuffix(n.b.Subnets[1], "/64") + "1"
			for k := range l {
				l[k] = strings.ReplaceAll(strings.ReplaceAll(l[k], gw4, "GW4"), gw6, "GW6")
			}
			layouts[i] = l
			if err := tc.del(rt).Check(t, list, "ctr-sbrr", pod.Path, "eth0", nil); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			if err := tc.del(rt).Del(t, list, "ctr-sbrr", pod.Path, "eth0", nil); err != nil {
				t.Errorf("DEL: %v", err)
			}
			if got := sourceRules(t, pod); len(got) != 0 {
				t.Errorf("rules left: %v", got)
			}
		})
	}
	if !slices.Equal(layouts[0], layouts[1]) {
		t.Errorf("reference layout:\n%s\nnetloom layout:\n%s", strings.Join(layouts[0], "\n"), strings.Join(layouts[1], "\n"))
	} else {
		t.Logf("same layout:\n%s", strings.Join(layouts[0], "\n"))
	}
}

// With "table": only the rule; the main table keeps its routes; DEL removes the rule.
func TestSbrFixedTable(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	n := newSbrNet(t, false, map[string]any{"table": 500})
	list := n.conflist("1.1.0")
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "sbrt")
	r, err := rt.Add(t, list, "ctr-sbrt", pod.Path, "eth0", nil)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = rt.Del(t, list, "ctr-sbrt", pod.Path, "eth0", nil) })
	ip := podAddrs(t, r)[0].Addr().String()
	if got, want := sourceRules(t, pod), []string{"from " + ip + " lookup 500"}; !slices.Equal(got, want) {
		t.Errorf("rules %v, want %v", got, want)
	}
	if m := strings.Join(podRoutes(t, pod, "main"), "\n"); !strings.Contains(m, n.b.Subnets[0]+" dev eth0") {
		t.Errorf("main lost its routes:\n%s", m)
	}
	if err := rt.Check(t, list, "ctr-sbrt", pod.Path, "eth0", nil); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := rt.Del(t, list, "ctr-sbrt", pod.Path, "eth0", nil); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if got := sourceRules(t, pod); len(got) != 0 {
		t.Errorf("rules left: %v", got)
	}
}

func TestSbrEveryCNIVersion(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			n := newSbrNet(t, false, nil)
			list := n.conflist(v)
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "sbrv")
			r, err := rt.Add(t, list, "ctr-sbrv", pod.Path, "eth0", nil)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if r.Version() != v || len(sourceRules(t, pod)) != 1 {
				t.Errorf("result version %s, rules %v", r.Version(), sourceRules(t, pod))
			}
			if v != "0.3.0" && v != "0.3.1" {
				if err := rt.Check(t, list, "ctr-sbrv", pod.Path, "eth0", nil); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if err := rt.Del(t, list, "ctr-sbrv", pod.Path, "eth0", nil); err != nil {
				t.Errorf("DEL: %v", err)
			}
			if l := n.leftovers(t); len(l) != 0 || len(sourceRules(t, pod)) != 0 {
				t.Errorf("left: %v, rules %v", l, sourceRules(t, pod))
			}
		})
	}
}

// Bad input: coded errors naming the key; the pod keeps its routes. DEL of a gone pod succeeds.
func TestSbrBadInput(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	for _, tc := range []struct {
		name   string
		keys   map[string]any
		prev   any
		naming string
	}{
		{name: "table zero", keys: map[string]any{"table": 0}, naming: "table"},
		{name: "table not a number", keys: map[string]any{"table": "main"}, naming: "table"},
		{name: "no prevResult", naming: "prevResult"},
		{name: "prevResult without addresses", prev: map[string]any{"cniVersion": "1.0.0", "interfaces": []any{map[string]any{"name": "eth0"}}}, naming: "prevResult"},
		{name: "no address on the interface", prev: map[string]any{"cniVersion": "1.0.0",
			"interfaces": []any{map[string]any{"name": "eth0"}, map[string]any{"name": "net1"}},
			"ips":        []any{map[string]any{"address": "10.9.9.9/24", "interface": 1}}}, naming: `"eth0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pod := vethPod(t)
			pod.Run(t, "ip", "addr", "add", "10.9.9.9/24", "dev", "eth0")
			m := map[string]any{"cniVersion": "1.0.0", "name": "sbrbad", "type": "sbr"}
			if tc.prev != nil {
				m["prevResult"] = tc.prev
			}
			for k, v := range tc.keys {
				m[k] = v
			}
			stdin, _ := json.Marshal(m)
			env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-sbrbad", "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
			out, err := harness.RunPlugin(t, "sbr", env, stdin)
			if err == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			if e := tuningErr(t, out); e.Code != 7 || !strings.Contains(e.Msg, tc.naming) {
				t.Errorf("error %+v, want code 7 naming %s", e, tc.naming)
			}
			if got := sourceRules(t, pod); len(got) != 0 {
				t.Errorf("rules %v", got)
			}
			if m := strings.Join(podRoutes(t, pod, "main"), "\n"); !strings.Contains(m, "10.9.9.0/24 dev eth0") {
				t.Errorf("main lost the subnet route:\n%s", m)
			}
		})
	}
	t.Run("DEL of a gone pod", func(t *testing.T) {
		t.Parallel()
		pod := harness.NewNetNS(t, "sbrg")
		pod.Delete(t)
		env := map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "ctr-sbrg", "CNI_NETNS": pod.Path, "CNI_IFNAME": "eth0"}
		if out, err := harness.RunPlugin(t, "sbr", env, []byte(`{"cniVersion":"1.0.0","name":"g","type":"sbr"}`)); err != nil {
			t.Errorf("DEL: %v: %s", err, out)
		}
	})
}

// Killed at each step: the runtime's DEL removes the rules and tables, the bridge's DEL the rest.
func TestFaultPointsSbr(t *testing.T) {
	harness.RequireRoot(t)
	n := newSbrNet(t, false, nil)
	faultChain{
		list:   n.conflist("1.1.0"),
		points: stepPoints("sbr", "rules", "unmain"),
		leftovers: func(t *testing.T, id string, pod *harness.NetNS) []string {
			out := append(podInterface(pod), n.leftovers(t)...)
			if r := sourceRules(t, *pod); len(r) != 0 {
				out = append(out, fmt.Sprintf("rules %v", r))
			}
			if r := podRoutes(t, *pod, "100"); len(r) != 0 {
				out = append(out, fmt.Sprintf("table 100 %v", r))
			}
			return out
		},
	}.killAtEveryPoint(t, "ctr-fault-sbr")
}

// Two interfaces of one pod, added at once: the namespace lock makes the two sbr ADDs pick different
// tables (100 and 101); DEL of one removes only its rule and table.
func TestSbrTwoInterfacesConcurrently(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	n := newSbrNet(t, false, nil)
	list := n.conflist("1.1.0")
	rt := harness.NewRuntime(t)
	pod := harness.NewNetNS(t, "sbr2")
	ifNames := []string{"eth0", "net1"}
	results := make([]types.Result, len(ifNames))
	errs := make([]error, len(ifNames))
	var wg sync.WaitGroup
	for i, ifName := range ifNames {
		t.Cleanup(func() { _ = rt.Del(t, list, "ctr-sbr2", pod.Path, ifName, nil) })
		wg.Go(func() { results[i], errs[i] = rt.Add(t, list, "ctr-sbr2", pod.Path, ifName, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ADD %s: %v", ifNames[i], err)
		}
	}
	rules := sourceRules(t, pod)
	tables := map[string]string{} // ifName -> table
	for i, ifName := range ifNames {
		ip := podAddrs(t, results[i])[0].Addr().String()
		for _, r := range rules {
			if strings.HasPrefix(r, "from "+ip+" lookup ") {
				tables[ifName] = strings.TrimPrefix(r, "from "+ip+" lookup ")
			}
		}
		if !strings.Contains(strings.Join(podRoutes(t, pod, tables[ifName]), "\n"), "dev "+ifName) {
			t.Errorf("table %q of %s holds no route through it", tables[ifName], ifName)
		}
	}
	if got := []string{tables["eth0"], tables["net1"]}; !(slices.Equal(got, []string{"100", "101"}) || slices.Equal(got, []string{"101", "100"})) {
		t.Errorf("tables %v, want 100 and 101 (rules %v)", tables, rules)
	}
	if err := rt.Del(t, list, "ctr-sbr2", pod.Path, "net1", nil); err != nil {
		t.Errorf("DEL net1: %v", err)
	}
	if got := sourceRules(t, pod); len(got) != 1 || !strings.HasSuffix(got[0], " lookup "+tables["eth0"]) {
		t.Errorf("after DEL of net1, rules %v; want only eth0's", got)
	}
	if err := rt.Del(t, list, "ctr-sbr2", pod.Path, "eth0", nil); err != nil {
		t.Errorf("DEL eth0: %v", err)
	}
	if got := sourceRules(t, pod); len(got) != 0 {
		t.Errorf("rules left: %v", got)
	}
	if l := n.leftovers(t); len(l) != 0 {
		t.Errorf("left: %v", l)
	}
}
