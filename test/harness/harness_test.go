package harness

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

func TestUnique(t *testing.T) {
	for _, tc := range []struct {
		prefix   string
		wantHead string
		wantLen  int
	}{
		{prefix: "", wantHead: "", wantLen: 8},
		{prefix: "nlbr", wantHead: "nlbr", wantLen: 12},
		{prefix: "abcdefg", wantHead: "abcdefg", wantLen: 15},
		{prefix: "abcdefghi", wantHead: "abcdefghi", wantLen: 15},
		{prefix: "abcdefghijklmnopq", wantHead: "abcdefghi", wantLen: 15},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			seen := map[string]bool{}
			for range 100 {
				got := Unique(tc.prefix)
				if len(got) != tc.wantLen || !strings.HasPrefix(got, tc.wantHead) {
					t.Fatalf("Unique(%q) = %q, want %d bytes starting %q", tc.prefix, got, tc.wantLen, tc.wantHead)
				}
				if seen[got] {
					t.Fatalf("Unique(%q) repeated %q within 100 calls", tc.prefix, got)
				}
				seen[got] = true
			}
		})
	}
}

func TestParseConfList(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		wantErr    bool
		wantTypes  []string
	}{
		{name: "conflist", conf: `{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"bridge"},{"type":"portmap"}]}`, wantTypes: []string{"bridge", "portmap"}},
		{name: "single plugin", conf: `{"cniVersion":"1.0.0","name":"n","type":"loopback"}`, wantTypes: []string{"loopback"}},
		{name: "not JSON", conf: `{"name":`, wantErr: true},
		{name: "no name", conf: `{"cniVersion":"1.1.0","plugins":[{"type":"bridge"}]}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := ParseConfList([]byte(tc.conf))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error for %s", tc.conf)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range list.Plugins {
				got = append(got, p.Network.Type)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantTypes, ",") {
				t.Errorf("plugin types %v, want %v", got, tc.wantTypes)
			}
		})
	}
}

func TestNetNSLifecycle(t *testing.T) {
	RequireRoot(t)
	n := NewNetNS(t, "h")
	if _, err := os.Stat(n.Path); err != nil {
		t.Fatalf("namespace file: %v", err)
	}
	if !strings.HasPrefix(n.Name, netnsPrefix) {
		t.Errorf("name %q lacks %q", n.Name, netnsPrefix)
	}
	// The namespace is a fresh one: only lo, and down.
	if out := n.Run(t, "ip", "-o", "link", "show"); strings.Count(out, "\n") != 1 || !strings.Contains(out, "lo:") {
		t.Errorf("fresh namespace links: %q", out)
	}
	if err := Ping(t, n, "127.0.0.1"); err == nil {
		t.Error("ping over a down lo succeeded")
	}
	n.Run(t, "ip", "link", "set", "lo", "up")
	if err := Ping(t, n, "127.0.0.1"); err != nil {
		t.Errorf("ping 127.0.0.1: %v", err)
	}
	if err := Ping(t, n, "::1"); err != nil {
		t.Errorf("ping ::1: %v", err)
	}
	if err := Ping(t, n, "not-an-ip"); err == nil {
		t.Error("ping of a non-address succeeded")
	}
	var inside string
	if err := n.Do(func() error {
		h, err := ns.GetCurrentNS()
		if err != nil {
			return err
		}
		defer h.Close()
		inside = h.Path()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inside == "" {
		t.Error("Do did not run inside the namespace")
	}
	n.Delete(t)
	if _, err := os.Stat(n.Path); !os.IsNotExist(err) {
		t.Errorf("after Delete: %v", err)
	}
	n.Delete(t) // again, as the cleanup will: a no-op
}

func TestRunPluginIsolatesEnv(t *testing.T) {
	RequireRoot(t) // not for privilege: building every plugin takes seconds, too slow for the unit run
	dir := PluginDir(t)
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("plugin dir %s: %v (%d entries)", dir, err, len(ents))
	}
	// CNI_COMMAND set in the test's environment must not reach the plugin.
	t.Setenv("CNI_COMMAND", "ADD")
	out, err := RunPlugin(t, ents[0].Name(), map[string]string{"CNI_COMMAND": "VERSION"}, []byte(`{"cniVersion":"1.1.0"}`))
	if err != nil {
		t.Fatalf("VERSION: %v", err)
	}
	if !strings.Contains(string(out), `"supportedVersions"`) {
		t.Errorf("VERSION printed %s", out)
	}
}

func TestServeDialAcrossWire(t *testing.T) {
	RequireRoot(t)
	n := NewNetNS(t, "sd")
	w := ConnectToHost(t, n, "10.216.250.1/30", "10.216.250.2/30")
	AddAddress(t, w, "fd16:fa::1/64", "fd16:fa::2/64")
	Serve(t, &n, "tcp", 18080, "far-tcp")
	Serve(t, &n, "udp", 18053, "far-udp")
	for _, c := range []struct{ proto, addr string }{
		{"tcp", "10.216.250.2"}, {"tcp", "fd16:fa::2"}, {"udp", "10.216.250.2"}, {"udp", "fd16:fa::2"},
	} {
		port := map[string]uint16{"tcp": 18080, "udp": 18053}[c.proto]
		got, err := Dial(nil, c.proto, netip.MustParseAddr(c.addr), port, 0)
		if err != nil || got != "far-"+c.proto {
			t.Errorf("%s %s: got %q, %v", c.proto, c.addr, got, err)
		}
	}
}
