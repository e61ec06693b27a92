package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"

	"github.com/netloom/netloom/pkg/conf"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex, "")
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"macvlan"`
	for _, s := range []string{
		`{` + base + `,"master":"eth0","mode":"passthru","mtu":1400,"ipam":{"type":"host-local","subnet":"10.1.2.0/24"}}`,
		`{` + base + `,"mode":"source","bcqueuelen":4294967295,"linkInContainer":true}`,
		`{` + base + `,"mac":"0a:00:00:00:00:02","runtimeConfig":{"mac":"0a:00:00:00:00:03"}}`,
		`{` + base + `,"mode":"Bridge","master":"eth0.100:1"}`,
		`{` + base + `,"bcqueuelen":-1,"mtu":67}`,
	} {
		f.Add([]byte(s), "IgnoreUnknown=1;MAC=0a:58:00:00:00:01")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		n, err := parseConfig(stdin, cniArgs)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if n.Master != "" {
			if err := conf.ValidateIfName("master", n.Master); err != nil {
				t.Fatalf("accepted master %q: %v", n.Master, err)
			}
		}
		if name := modeName(n.mode); name == "unknown" || (n.Mode != "" && name != n.Mode) {
			t.Fatalf("mode %q parsed as %v (%s)", n.Mode, n.mode, name)
		}
		if m, ok := parseMode(modeName(n.mode)); !ok || m != n.mode {
			t.Fatalf("mode %v does not round-trip through its name", n.mode)
		}
		if n.MTU != 0 && (n.MTU < conf.MinMTU || n.MTU > conf.MaxMTU) {
			t.Fatalf("accepted mtu %d", n.MTU)
		}
		if n.BcQueueLen < 0 || n.BcQueueLen > maxBcQueueLen {
			t.Fatalf("accepted bcqueuelen %d", n.BcQueueLen)
		}
		if n.hasL3 != (n.IPAM.Type != "") {
			t.Fatalf("hasL3 %v with ipam type %q", n.hasL3, n.IPAM.Type)
		}
		if n.mac != nil && (len(n.mac) != 6 || n.mac[0]&1 != 0) {
			t.Fatalf("accepted MAC %s", n.mac)
		}
	})
}
