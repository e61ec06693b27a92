package main

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
	"github.com/netloom/netloom/pkg/conf"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex, "")
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"tuning"`
	for _, s := range []string{
		`{` + base + `,"sysctl":{"net.ipv4.conf.IFNAME.arp_notify":"1"},"mac":"0a:58:0a:00:00:05","promisc":true,"mtu":1400,"txQLen":10,"allmulti":true}`,
		`{` + base + `,"sysctl":{"net.a":"1","net.a":"2"}}`,
		`{` + base + `,"sysctl":{"kernel.panic":"1"}}`,
		`{` + base + `,"args":{"cni":{"sysctl":{"net.x":"1"},"mac":"0a:00:00:00:00:01","mtu":9000}}}`,
		`{` + base + `,"runtimeConfig":{"mac":"zz"}}`,
		`{` + base + `,"sysctl":null}`,
		`{` + base,
	} {
		f.Add([]byte(s), "MAC=0a:00:00:00:00:09")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		n, err := parseConfig(stdin, cniArgs)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		w := n.want
		if w.mtu != 0 && (w.mtu < conf.MinMTU || w.mtu > conf.MaxMTU) {
			t.Fatalf("accepted mtu %d", w.mtu)
		}
		if w.txQLen != nil && *w.txQLen < 0 {
			t.Fatalf("accepted txQLen %d", *w.txQLen)
		}
		if w.mac != nil && (len(w.mac) != 6 || w.mac[0]&1 != 0) {
			t.Fatalf("accepted MAC %s", w.mac)
		}
		seen := map[string]bool{}
		for _, s := range w.sysctls {
			p, err := sysctlPath(s.Key, "eth0")
			if err != nil || !strings.HasPrefix(p, "net/") || seen[s.Key] {
				t.Fatalf("accepted sysctl %q (%q, %v)", s.Key, p, err)
			}
			seen[s.Key] = true
		}
		if _, err := parseDel(stdin); err != nil {
			t.Fatalf("DEL refuses a configuration ADD accepts: %v", err)
		}
	})
}
