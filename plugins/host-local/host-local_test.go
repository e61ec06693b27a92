package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/ipam"
	"github.com/netloom/netloom/pkg/plugin"
)

// testNet renders a host-local config with the given range sets (JSON) in dataDir.
func testNet(t *testing.T, dataDir, sets string, extra ...string) []byte {
	t.Helper()
	tail := ""
	for _, e := range extra {
		tail += "," + e
	}
	return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"hl","ipam":{"type":"host-local","dataDir":%q,"ranges":%s}%s}`, dataDir, sets, tail))
}

func cmdArgs(stdin []byte, id, ifname string) *plugin.Args {
	return &plugin.Args{ContainerID: id, IfName: ifname, Netns: "/var/run/netns/x", StdinData: stdin}
}

// add runs cmdAdd and returns the printed result (or the error).
func add(t *testing.T, stdin []byte, id, ifname string) (*current.Result, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	err = commands().Add(cmdArgs(stdin, id, ifname))
	w.Close()
	os.Stdout = stdout
	out := <-done
	if err != nil {
		return nil, err
	}
	res := &current.Result{}
	if jerr := json.Unmarshal(out, res); jerr != nil {
		t.Fatalf("result %q: %v", out, jerr)
	}
	return res, nil
}

func mustAdd(t *testing.T, stdin []byte, id, ifname string) []string {
	t.Helper()
	res, err := add(t, stdin, id, ifname)
	if err != nil {
		t.Fatalf("ADD %s/%s: %v", id, ifname, err)
	}
	var out []string
	for _, ip := range res.IPs {
		out = append(out, ip.Address.String())
	}
	return out
}

func leaseFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "lock" && e.Name() != ipam.IndexFile && !strings.HasPrefix(e.Name(), "last_reserved_ip.") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestAddDelCycle(t *testing.T) {
	dataDir := t.TempDir()
	stdin := testNet(t, dataDir, `[[{"subnet":"10.7.0.0/29"}],[{"subnet":"fd07::/125"}]]`, `"ipam_ignored":1`)
	first := mustAdd(t, stdin, "ctr-a", "eth0")
	if !slices.Equal(first, []string{"10.7.0.2/29", "fd07::2/125"}) {
		t.Fatalf("first ADD = %v", first)
	}
	// A retried ADD of the same attachment gets the same addresses, not new ones.
	if again := mustAdd(t, stdin, "ctr-a", "eth0"); !slices.Equal(again, first) {
		t.Errorf("repeated ADD = %v, want %v", again, first)
	}
	// Another interface of the same container is another attachment.
	if other := mustAdd(t, stdin, "ctr-a", "net1"); !slices.Equal(other, []string{"10.7.0.3/29", "fd07::3/125"}) {
		t.Errorf("second interface = %v", other)
	}
	if err := commands().Check(cmdArgs(stdin, "ctr-a", "eth0")); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := cmdDel(cmdArgs(stdin, "ctr-a", "eth0")); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if err := cmdDel(cmdArgs(stdin, "ctr-a", "eth0")); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if err := commands().Check(cmdArgs(stdin, "ctr-a", "eth0")); err == nil || !strings.Contains(err.Error(), "ctr-a/eth0") {
		t.Errorf("CHECK after DEL = %v; want an error naming ctr-a/eth0", err)
	}
	// Round robin: the released .2 is not handed out again before the rest of the range.
	if next := mustAdd(t, stdin, "ctr-b", "eth0"); !slices.Equal(next, []string{"10.7.0.4/29", "fd07::4/125"}) {
		t.Errorf("after DEL = %v", next)
	}
	if got := leaseFiles(t, filepath.Join(dataDir, "hl")); len(got) != 4 {
		t.Errorf("lease files %v", got)
	}
}

func TestAddResultFields(t *testing.T) {
	dataDir := t.TempDir()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("# c\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.org\nsearch a.example b.example\noptions ndots:5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdin := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"hl","ipam":{"type":"host-local","dataDir":%q,"resolvConf":%q,
		"subnet":"10.8.0.0/24","gateway":"10.8.0.254","routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.8.0.9"}]}}`, dataDir, resolv))
	res, err := add(t, stdin, "c", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.8.0.1/24" || res.IPs[0].Gateway.String() != "10.8.0.254" {
		t.Errorf("ips %v", res.IPs)
	}
	if len(res.Routes) != 2 || res.Routes[1].GW.String() != "10.8.0.9" {
		t.Errorf("routes %v", res.Routes)
	}
	if !slices.Equal(res.DNS.Nameservers, []string{"10.0.0.53", "fd00::53"}) || res.DNS.Domain != "example.org" ||
		!slices.Equal(res.DNS.Search, []string{"a.example", "b.example"}) || !slices.Equal(res.DNS.Options, []string{"ndots:5"}) {
		t.Errorf("dns %+v", res.DNS)
	}
	bad := []byte(strings.Replace(string(stdin), resolv, "/nonexistent/resolv.conf", 1))
	if _, err := add(t, bad, "d", "eth0"); conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "resolvConf") {
		t.Errorf("missing resolvConf: %v", err)
	}
}

func TestAddRequested(t *testing.T) {
	dataDir := t.TempDir()
	sets := `[[{"subnet":"10.9.0.0/24"}]]`
	ask := func(ip string) []byte {
		return testNet(t, dataDir, sets, fmt.Sprintf(`"runtimeConfig":{"ips":[%q]}`, ip))
	}
	if got := mustAdd(t, ask("10.9.0.77"), "a", "eth0"); got[0] != "10.9.0.77/24" {
		t.Errorf("requested = %v", got)
	}
	if got := mustAdd(t, ask("10.9.0.77"), "a", "eth0"); got[0] != "10.9.0.77/24" {
		t.Errorf("repeated request = %v", got)
	}
	_, err := add(t, ask("10.9.0.77"), "b", "eth0")
	if conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "a/eth0") || !strings.Contains(err.Error(), "runtimeConfig.ips[0]") {
		t.Errorf("taken address: %v", err)
	}
	_, err = add(t, ask("10.9.0.78"), "a", "eth0")
	if conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "already holds 10.9.0.77") {
		t.Errorf("different request for a holder: %v", err)
	}
	// Round robin continues after the requested address, as the reference records it as last reserved.
	if got := mustAdd(t, testNet(t, dataDir, sets), "c", "eth0"); got[0] != "10.9.0.78/24" {
		t.Errorf("after a requested address = %v", got)
	}
}

// A failing range set releases what the earlier sets leased in the same ADD.
func TestAddRollsBackOnExhaustion(t *testing.T) {
	dataDir := t.TempDir()
	stdin := testNet(t, dataDir, `[[{"subnet":"10.10.0.0/24"}],[{"subnet":"10.213.251.0/30"}]]`)
	mustAdd(t, stdin, "a", "eth0")
	_, err := add(t, stdin, "b", "eth0")
	want := "no free address in range 10.213.251.0/30 (rangeset 1): all 1 addresses are leased"
	if conf.Code(err) != conf.CodeNotAvailable || !strings.Contains(err.Error(), want) {
		t.Fatalf("exhausted: %v; want code 50 with %q", err, want)
	}
	if got := leaseFiles(t, filepath.Join(dataDir, "hl")); len(got) != 2 {
		t.Errorf("lease files after a failed ADD: %v (want a's two only)", got)
	}
}

func TestDelWithoutStore(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "never")
	if err := cmdDel(cmdArgs(testNet(t, dataDir, `[[{"subnet":"bogus"}]]`), "a", "eth0")); err != nil {
		t.Errorf("DEL with no store and a broken range: %v", err)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("DEL created the dataDir")
	}
}

func TestCheckPrevResult(t *testing.T) {
	dataDir := t.TempDir()
	stdin := testNet(t, dataDir, `[[{"subnet":"10.11.0.0/24"}]]`)
	got := mustAdd(t, stdin, "a", "eth0")
	prev := func(addr string) []byte {
		return testNet(t, dataDir, `[[{"subnet":"10.11.0.0/24"}]]`,
			fmt.Sprintf(`"prevResult":{"cniVersion":"1.1.0","ips":[{"address":%q},{"address":"192.168.9.9/24"}]}`, addr))
	}
	if err := commands().Check(cmdArgs(prev(got[0]), "a", "eth0")); err != nil {
		t.Errorf("CHECK with its own prevResult: %v", err)
	}
	if err := commands().Check(cmdArgs(prev("10.11.0.99/24"), "a", "eth0")); err == nil || !strings.Contains(err.Error(), "10.11.0.99") {
		t.Errorf("CHECK with an address not leased to it: %v", err)
	}
	if err := commands().Check(cmdArgs(stdin, "a", "eth9")); err == nil {
		t.Error("CHECK of another interface passed")
	}
}

func TestGC(t *testing.T) {
	dataDir := t.TempDir()
	stdin := testNet(t, dataDir, `[[{"subnet":"10.12.0.0/24"}]]`)
	for _, a := range []string{"live", "dead", "live2"} {
		mustAdd(t, stdin, a, "eth0")
	}
	mustAdd(t, stdin, "live", "net1")
	dir := filepath.Join(dataDir, "hl")
	for name, content := range map[string]string{"10.12.0.100": "live2", "10.12.0.101": "gone-legacy"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gc := func(valid string) error {
		return cmdGC(&plugin.Args{StdinData: testNet(t, dataDir, `[[{"subnet":"10.12.0.0/24"}]]`, `"cni.dev/valid-attachments":`+valid)})
	}
	if err := gc(`[{"containerID":"live","ifname":"eth0"},{"containerID":"live2","ifname":"eth0"}]`); err != nil {
		t.Fatalf("GC: %v", err)
	}
	got := leaseFiles(t, dir)
	slices.Sort(got)
	// dead/eth0, live/net1 and the legacy lease of a gone container are released; live2's legacy stays.
	if want := []string{"10.12.0.100", "10.12.0.2", "10.12.0.4"}; !slices.Equal(got, want) {
		t.Errorf("after GC %v, want %v", got, want)
	}
	if err := cmdGC(&plugin.Args{StdinData: stdin}); conf.Code(err) != conf.CodeInvalidConfig {
		t.Errorf("GC without valid-attachments: %v", err)
	}
	if got := leaseFiles(t, dir); len(got) != 3 {
		t.Errorf("a refused GC released leases: %v", got)
	}
	if err := gc(`[]`); err != nil {
		t.Fatal(err)
	}
	if got := leaseFiles(t, dir); len(got) != 0 {
		t.Errorf("GC with nothing valid left %v", got)
	}
}

func TestStatus(t *testing.T) {
	dataDir := t.TempDir()
	stdin := testNet(t, dataDir, `[[{"subnet":"10.13.0.0/24"}],[{"subnet":"10.213.251.0/30"}]]`)
	status := func(stdin []byte) error { return commands().Status(&plugin.Args{StdinData: stdin}) }
	if err := status(stdin); err != nil {
		t.Fatalf("STATUS of a fresh network: %v", err)
	}
	mustAdd(t, stdin, "a", "eth0")
	err := status(stdin)
	if conf.Code(err) != conf.CodeNotAvailable || !strings.Contains(err.Error(), "10.213.251.0/30 (rangeset 1)") {
		t.Errorf("STATUS with a full set: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = status(testNet(t, filepath.Join(file, "sub"), `[[{"subnet":"10.13.0.0/24"}]]`))
	if conf.Code(err) != conf.CodeNotAvailable || !strings.Contains(err.Error(), file) {
		t.Errorf("STATUS with an unusable dataDir: %v", err)
	}
}

func TestBadAttachment(t *testing.T) {
	stdin := testNet(t, t.TempDir(), `[[{"subnet":"10.14.0.0/24"}]]`)
	for _, tc := range []struct{ id, ifname, naming string }{
		{"../x", "eth0", "containerID"},
		{"a/b", "eth0", "containerID"},
		{"ok", "eth0123456789abcdef", "interface name"},
		{"ok", "a/b", "CNI_IFNAME"},
	} {
		for cmd, f := range map[string]func(*plugin.Args) error{"DEL": commands().Del, "CHECK": commands().Check} {
			err := f(cmdArgs(stdin, tc.id, tc.ifname))
			if conf.Code(err) != conf.CodeInvalidEnvironment || !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("%s %q/%q: %v; want code 4 naming %s", cmd, tc.id, tc.ifname, err, tc.naming)
			}
		}
		if _, err := add(t, stdin, tc.id, tc.ifname); conf.Code(err) != conf.CodeInvalidEnvironment {
			t.Errorf("ADD %q/%q: %v", tc.id, tc.ifname, err)
		}
	}
}
