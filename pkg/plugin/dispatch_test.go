package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// dispatchCase is one CNI call: the variables set (the rest empty), stdin, and what the plugin's
// commands return.
type dispatchCase struct {
	name  string
	env   map[string]string
	stdin string
	ret   error
	// code is the CNI error code the runtime must read (0: success); naming, words the message must hold.
	code   uint
	naming string
	// ran is whether the command must have run.
	ran bool
}

var cniVars = []string{"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH", "CNI_NETNS_OVERRIDE"}

func podEnv(cmd string, over ...string) map[string]string {
	env := map[string]string{"CNI_COMMAND": cmd, "CNI_CONTAINERID": "ctr-1", "CNI_NETNS": "/var/run/netns/netloom-no-such-ns",
		"CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
	for i := 0; i+1 < len(over); i += 2 {
		env[over[i]] = over[i+1]
	}
	return env
}

func dispatchCases() []dispatchCase {
	const ok = `{"cniVersion":"1.1.0","name":"net1","type":"x"}`
	return []dispatchCase{
		{name: "ADD", env: podEnv("ADD"), stdin: ok, ran: true},
		{name: "DEL without CNI_NETNS", env: podEnv("DEL", "CNI_NETNS", ""), stdin: ok, ran: true},
		{name: "CHECK", env: podEnv("CHECK"), stdin: ok, ran: true},
		{name: "GC needs only CNI_PATH", env: map[string]string{"CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"}, stdin: ok, ran: true},
		{name: "STATUS needs only CNI_PATH", env: map[string]string{"CNI_COMMAND": "STATUS", "CNI_PATH": "/x"}, stdin: ok, ran: true},
		{name: "every version for ADD", env: podEnv("ADD"), stdin: `{"cniVersion":"0.3.1","name":"n"}`, ran: true},
		{name: "no cniVersion is 0.1.0", env: podEnv("ADD"), stdin: `{"name":"n"}`, ran: true},

		{name: "missing CNI_NETNS", env: podEnv("ADD", "CNI_NETNS", ""), stdin: ok, code: 4, naming: "CNI_NETNS"},
		{name: "missing CNI_CONTAINERID on DEL", env: podEnv("DEL", "CNI_CONTAINERID", ""), stdin: ok, code: 4, naming: "CNI_CONTAINERID"},
		{name: "missing CNI_IFNAME on CHECK", env: podEnv("CHECK", "CNI_IFNAME", ""), stdin: ok, code: 4, naming: "CNI_IFNAME"},
		{name: "missing CNI_PATH on GC", env: map[string]string{"CNI_COMMAND": "GC"}, stdin: ok, code: 4, naming: "CNI_PATH"},
		{name: "unknown command", env: podEnv("UP"), stdin: ok, code: 4, naming: "UP"},
		{name: "container ID with a slash", env: podEnv("ADD", "CNI_CONTAINERID", "../../etc/x"), stdin: ok, code: 4, naming: "CNI_CONTAINERID"},
		{name: "container ID with a blank", env: podEnv("DEL", "CNI_CONTAINERID", "a b"), stdin: ok, code: 4, naming: "CNI_CONTAINERID"},
		{name: "interface name with a slash", env: podEnv("ADD", "CNI_IFNAME", "et/h0"), stdin: ok, code: 4, naming: "CNI_IFNAME"},
		{name: "interface name too long", env: podEnv("ADD", "CNI_IFNAME", "eth0123456789abcdef"), stdin: ok, code: 4, naming: "CNI_IFNAME"},
		{name: "interface name ..", env: podEnv("DEL", "CNI_IFNAME", ".."), stdin: ok, code: 4, naming: "CNI_IFNAME"},

		{name: "stdin not JSON", env: podEnv("ADD"), stdin: `{"name":`, code: 6, naming: "network config"},
		{name: "no network name", env: podEnv("ADD"), stdin: `{"cniVersion":"1.0.0"}`, code: 7, naming: "name"},
		{name: "bad network name", env: podEnv("DEL"), stdin: `{"cniVersion":"1.0.0","name":"a b"}`, code: 7, naming: "name"},
		{name: "unsupported cniVersion", env: podEnv("ADD"), stdin: `{"cniVersion":"9.9.9","name":"n"}`, code: 1, naming: "9.9.9"},
		{name: "CHECK before 0.4.0", env: podEnv("CHECK"), stdin: `{"cniVersion":"0.3.1","name":"n"}`, code: 1, naming: "CHECK"},
		{name: "GC before 1.1.0", env: map[string]string{"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, stdin: `{"cniVersion":"1.0.0","name":"n"}`, code: 1, naming: "GC"},
		{name: "STATUS without a cniVersion", env: map[string]string{"CNI_COMMAND": "STATUS", "CNI_PATH": "/x"}, stdin: `{"name":"n"}`, code: 1, naming: "STATUS"},

		{name: "command's coded error", env: podEnv("ADD"), stdin: ok, ret: types.NewError(11, "busy", ""), code: 11, naming: "busy", ran: true},
		{name: "command's plain error", env: podEnv("DEL"), stdin: ok, ret: errors.New("netlink: no such device"), code: 999, naming: "no such device", ran: true},
	}
}

func TestDispatch(t *testing.T) {
	for _, tc := range dispatchCases() {
		t.Run(tc.name, func(t *testing.T) {
			var got *Args
			f := func(a *Args) error { got = a; return tc.ret }
			var stdout, stderr bytes.Buffer
			c := call{getenv: func(k string) string { return tc.env[k] }, stdin: strings.NewReader(tc.stdin), stdout: &stdout, stderr: &stderr}
			e := c.dispatch(Funcs{Add: f, Del: f, Check: f, GC: f, Status: f}, "about")
			if tc.code == 0 && e != nil || tc.code != 0 && (e == nil || e.Code != tc.code) {
				t.Fatalf("got %+v, want code %d", e, tc.code)
			}
			if e != nil && !strings.Contains(e.Msg+" "+e.Details, tc.naming) {
				t.Errorf("%q does not name %q", e.Msg+" "+e.Details, tc.naming)
			}
			if (got != nil) != tc.ran {
				t.Fatalf("the command ran: %v, want %v", got != nil, tc.ran)
			}
			if got != nil && (got.ContainerID != tc.env["CNI_CONTAINERID"] || got.IfName != tc.env["CNI_IFNAME"] ||
				got.Netns != tc.env["CNI_NETNS"] || got.Path != tc.env["CNI_PATH"] || string(got.StdinData) != tc.stdin) {
				t.Errorf("the command got %+v", got)
			}
			if stdout.Len() > 0 || stderr.Len() > 0 {
				t.Errorf("dispatch wrote %q / %q", stdout.String(), stderr.String())
			}
		})
	}
}

// TestDispatchAgreesWithSkeleton runs every case through the CNI library's skeleton too: a runtime must
// read the same code from netloom as from a plugin built on the skeleton.
func TestDispatchAgreesWithSkeleton(t *testing.T) {
	stdin := os.Stdin
	t.Cleanup(func() { os.Stdin = stdin })
	for _, tc := range dispatchCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range cniVars {
				t.Setenv(v, tc.env[v])
			}
			path := filepath.Join(t.TempDir(), "stdin")
			if err := os.WriteFile(path, []byte(tc.stdin), 0o600); err != nil {
				t.Fatal(err)
			}
			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			os.Stdin = in
			f := func(*skel.CmdArgs) error { return tc.ret }
			e := skel.PluginMainFuncsWithError(skel.CNIFuncs{Add: f, Del: f, Check: f, GC: f, Status: f}, Supported, "about")
			var code uint
			if e != nil {
				code = e.Code
			}
			if code != tc.code {
				t.Errorf("the skeleton answers %+v, netloom code %d", e, tc.code)
			}
		})
	}
}

func TestDispatchVersionAndAbout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"CNI_COMMAND": "VERSION"}
	c := call{getenv: func(k string) string { return env[k] }, stdin: strings.NewReader("not read"), stdout: &stdout, stderr: &stderr}
	if e := c.dispatch(Funcs{}, "netloom demo v1"); e != nil {
		t.Fatal(e)
	}
	var v struct {
		CNIVersion string   `json:"cniVersion"`
		Supported  []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || v.CNIVersion != "1.1.0" || len(v.Supported) != len(Supported.SupportedVersions()) {
		t.Errorf("VERSION printed %q (%v)", stdout.String(), err)
	}
	stdout.Reset()
	env = map[string]string{}
	if e := c.dispatch(Funcs{}, "netloom demo v1"); e != nil || stdout.Len() > 0 ||
		stderr.String() != "netloom demo v1\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n" {
		t.Errorf("without CNI_COMMAND: %v, stdout %q, stderr %q", e, stdout.String(), stderr.String())
	}
}

// An ADD or DEL aimed at the plugin's own namespace is refused before the command touches it (the
// skeleton refused it only after the command had run), unless CNI_NETNS_OVERRIDE says it is meant.
func TestDispatchOwnNetns(t *testing.T) {
	for _, tc := range []struct {
		cmd, override string
		code          uint
	}{{"ADD", "", 8}, {"DEL", "", 8}, {"ADD", "1", 0}, {"DEL", "true", 0}, {"CHECK", "", 0}} {
		env := podEnv(tc.cmd, "CNI_NETNS", "/proc/self/ns/net", "CNI_NETNS_OVERRIDE", tc.override)
		ran := false
		f := func(*Args) error { ran = true; return nil }
		c := call{getenv: func(k string) string { return env[k] }, stdin: strings.NewReader(`{"cniVersion":"1.1.0","name":"n"}`)}
		e := c.dispatch(Funcs{Add: f, Del: f, Check: f}, "")
		if tc.code == 0 && (e != nil || !ran) || tc.code != 0 && (e == nil || e.Code != tc.code || ran || !strings.Contains(e.Msg, "CNI_NETNS")) {
			t.Errorf("%s with override %q: %+v, ran %v; want code %d", tc.cmd, tc.override, e, ran, tc.code)
		}
	}
}
