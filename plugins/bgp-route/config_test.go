package main

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

const prev = `,"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.244.1.5/24"},{"address":"fd00:1::5/64"}]}`

func cfg(extra string) string {
	return `{"cniVersion":"1.1.0","name":"pods","type":"bgp-route"` + extra + `}`
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		code       uint
		field      string
		want       []string // announcements' prefixes
	}{
		{name: "defaults: pod mode, every address", json: cfg(prev), want: []string{"10.244.1.5/32", "fd00:1::5/128"}},
		{name: "node mode: the subnets", json: cfg(`,"announce":"node"` + prev), want: []string{"10.244.1.0/24", "fd00:1::/64"}},
		{name: "node mode with podCIDR", json: cfg(`,"announce":"node","podCIDR":"10.244.1.0/24"` + prev), want: []string{"10.244.1.0/24"}},
		{name: "IPv4 next hop: IPv4 only", json: cfg(`,"nextHop":"10.77.1.11"` + prev), want: []string{"10.244.1.5/32"}},
		{name: "communities", json: cfg(`,"communities":["65000:100","no-export"]` + prev), want: []string{"10.244.1.5/32", "fd00:1::5/128"}},
		{name: "bad announce", json: cfg(`,"announce":"all"`), code: 7, field: "announce"},
		{name: "bad speaker", json: cfg(`,"speaker":"unix://relative.sock"`), code: 7, field: "speaker"},
		{name: "bad nextHop", json: cfg(`,"nextHop":"node"`), code: 7, field: "nextHop"},
		{name: "bad community", json: cfg(`,"communities":["65000:100","70000:1"]`), code: 7, field: "communities[1]"},
		{name: "community without colon", json: cfg(`,"communities":["100"]`), code: 7, field: "communities[0]"},
		{name: "podCIDR with host bits", json: cfg(`,"podCIDR":"10.244.1.5/24"`), code: 7, field: "podCIDR"},
		{name: "relative stateDir", json: cfg(`,"stateDir":"state"`), code: 7, field: "stateDir"},
		{name: "wrong type", json: cfg(`,"communities":"65000:100"`), code: 7, field: "communities"},
		{name: "bad prevResult", json: cfg(`,"prevResult":{"cniVersion":"1.1.0","ips":"x"}`), code: 7, field: "prevResult"},
		{name: "not JSON", json: `{`, code: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseConfig([]byte(tc.json))
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("error %q does not name %q", err, tc.field)
				}
				return
			}
			if tc.want == nil {
				return
			}
			anns, err := n.announcements(n.prev)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range anns {
				got = append(got, a.Prefix.String())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("announcements %v, want %v", got, tc.want)
			}
		})
	}
}

func TestREADMENamesEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
