package main

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"vrf"`
	for _, tc := range []struct {
		name  string
		json  string
		code  uint
		field string
		check func(*testing.T, *NetConf)
	}{
		{name: "vrfname only", json: `{` + base + `,"vrfname":"blue"}`, check: func(t *testing.T, n *NetConf) {
			if n.VRFName != "blue" || n.Table != 0 {
				t.Errorf("%+v", n)
			}
		}},
		{name: "with table", json: `{` + base + `,"vrfname":"blue","table":4294967295}`, check: func(t *testing.T, n *NetConf) {
			if n.Table != 4294967295 {
				t.Errorf("table %d", n.Table)
			}
		}},
		{name: "no vrfname", json: `{` + base + `}`, code: conf.CodeInvalidConfig, field: "vrfname"},
		{name: "vrfname too long", json: `{` + base + `,"vrfname":"a-very-long-vrf-name"}`, code: conf.CodeInvalidConfig, field: "vrfname"},
		{name: "vrfname with slash", json: `{` + base + `,"vrfname":"a/b"}`, code: conf.CodeInvalidConfig, field: "vrfname"},
		{name: "negative table", json: `{` + base + `,"vrfname":"blue","table":-1}`, code: conf.CodeInvalidConfig, field: "table"},
		{name: "table too large", json: `{` + base + `,"vrfname":"blue","table":4294967296}`, code: conf.CodeInvalidConfig, field: "table"},
		{name: "table wrong type", json: `{` + base + `,"vrfname":"blue","table":"main"}`, code: conf.CodeInvalidConfig, field: "table"},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseConfig([]byte(tc.json))
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
			if err == nil && tc.check != nil {
				tc.check(t, n)
			}
		})
	}
}

func TestFreeTable(t *testing.T) {
	for _, tc := range []struct {
		used []uint32
		want uint32
	}{{nil, 1}, {[]uint32{1}, 2}, {[]uint32{2, 1, 4}, 3}, {[]uint32{100}, 1}} {
		if got := freeTable(tc.used); got != tc.want {
			t.Errorf("freeTable(%v) = %d, want %d", tc.used, got, tc.want)
		}
	}
}

func TestUniverseScope(t *testing.T) {
	rs := []netlink.Route{{Scope: netlink.SCOPE_UNIVERSE, Priority: 1}, {Scope: netlink.SCOPE_LINK, Priority: 2}, {Scope: netlink.SCOPE_HOST, Priority: 3}, {Scope: netlink.SCOPE_UNIVERSE, Priority: 4}}
	got := universeScope(rs)
	if len(got) != 2 || got[0].Priority != 1 || got[1].Priority != 4 {
		t.Errorf("%+v", got)
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
