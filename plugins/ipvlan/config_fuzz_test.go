package main

import (
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"

	"github.com/netloom/netloom/pkg/conf"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex)
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"ipvlan"`
	const prev1 = `"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"nlup0"}],"ips":[{"address":"10.1.2.2/24","interface":0}]}`
	for _, s := range []string{
		`{` + base + `,` + prev1 + `}`,
		`{` + base + `,"master":"eth0","mode":"l3s","mtu":1400,"ipam":{"type":"host-local"}}`,
		`{` + base + `,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"a"},{"name":"b"}],"ips":[]}}`,
		`{` + base + `,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":""}]}}`,
		`{` + base + `,"mode":"l4","linkInContainer":true}`,
		`{"cniVersion":"0.3.1","name":"n","prevResult":{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.2.2/24"}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		n, err := parseConfig(stdin)
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
		if n.MTU != 0 && (n.MTU < conf.MinMTU || n.MTU > conf.MaxMTU) {
			t.Fatalf("accepted mtu %d", n.MTU)
		}
		if (n.RawPrevResult != nil) != (n.prev != nil) {
			t.Fatalf("raw prevResult %v, parsed %v", n.RawPrevResult != nil, n.prev != nil)
		}
		master, err := n.masterName()
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
		} else if master != n.Master && (n.prev == nil || master == "") {
			t.Fatalf("master %q from neither \"master\" %q nor prevResult", master, n.Master)
		}
		fromPrev, err := n.addresses()
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
		} else if fromPrev && (n.prev == nil || len(n.prev.IPs) == 0) {
			t.Fatal("addresses from a prevResult without IPs")
		}
	})
}
