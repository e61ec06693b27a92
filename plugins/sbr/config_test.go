package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"sbr"`
	for _, tc := range []struct {
		name  string
		json  string
		code  uint
		field string
		table int // 0: unset
	}{
		{name: "defaults", json: `{` + base + `}`},
		{name: "table", json: `{` + base + `,"table":500}`, table: 500},
		{name: "table zero", json: `{` + base + `,"table":0}`, code: conf.CodeInvalidConfig, field: "table"},
		{name: "table negative", json: `{` + base + `,"table":-3}`, code: conf.CodeInvalidConfig, field: "table"},
		{name: "table too large", json: `{` + base + `,"table":4294967296}`, code: conf.CodeInvalidConfig, field: "table"},
		{name: "table wrong type", json: `{` + base + `,"table":"main"}`, code: conf.CodeInvalidConfig, field: "table"},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
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
			if (n.Table == nil) != (tc.table == 0) || (n.Table != nil && *n.Table != tc.table) {
				t.Errorf("table %v, want %d", n.Table, tc.table)
			}
		})
	}
}

func TestAddressesOf(t *testing.T) {
	ip := func(s string, idx *int, gw string) *current.IPConfig {
		_, n, _ := net.ParseCIDR(s)
		a, _, _ := net.ParseCIDR(s)
		n.IP = a
		c := &current.IPConfig{Address: *n, Interface: idx}
		if gw != "" {
			c.Gateway = net.ParseIP(gw)
		}
		return c
	}
	ifs := []*current.Interface{{Name: "veth0"}, {Name: "eth0", Sandbox: "/x"}, {Name: "net1", Sandbox: "/x"}}
	for _, tc := range []struct {
		name  string
		res   *current.Result
		want  []string // "addr gw"
		field string   // error naming
	}{
		{name: "no IPs", res: &current.Result{Interfaces: ifs}, field: "prevResult"},
		{name: "by index", res: &current.Result{Interfaces: ifs, IPs: []*current.IPConfig{
			ip("10.1.0.5/24", current.Int(1), "10.1.0.1"), ip("10.2.0.5/24", current.Int(2), ""), ip("fd00::5/64", current.Int(1), ""),
		}}, want: []string{"10.1.0.5/24 10.1.0.1", "fd00::5/64 invalid IP"}},
		{name: "no index is ours, out of range too", res: &current.Result{Interfaces: ifs, IPs: []*current.IPConfig{
			ip("10.1.0.5/24", nil, ""), ip("10.3.0.5/24", current.Int(9), ""),
		}}, want: []string{"10.1.0.5/24 invalid IP", "10.3.0.5/24 invalid IP"}},
		{name: "none on ours", res: &current.Result{Interfaces: ifs, IPs: []*current.IPConfig{ip("10.2.0.5/24", current.Int(2), "")}}, field: `"eth0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := addressesOf(tc.res, "eth0")
			if tc.field != "" {
				if conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), tc.field) {
					t.Errorf("error %v, want code 7 naming %s", err, tc.field)
				}
				return
			}
			var s []string
			for _, c := range got {
				s = append(s, c.addr.String()+" "+c.gw.String())
			}
			if strings.Join(s, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", s, tc.want)
			}
		})
	}
}

func cidr(s string) *net.IPNet {
	_, n, _ := net.ParseCIDR(s)
	return n
}

// The reference's layout: a table per address from 100 on, skipping used ones; each gets a default route
// via its gateway and the interface's routes whose source or gateway is in its subnet or that have
// neither.
func TestPlan(t *testing.T) {
	const idx = 7
	subnet4 := netlink.Route{LinkIndex: idx, Dst: cidr("10.1.0.0/24"), Src: net.ParseIP("10.1.0.5").To4(), Protocol: 2, Scope: netlink.SCOPE_LINK, Table: 254, Flags: 16}
	def4 := netlink.Route{LinkIndex: idx, Gw: net.ParseIP("10.1.0.1").To4(), Table: 254}
	other := netlink.Route{LinkIndex: idx, Dst: cidr("192.168.0.0/16"), Gw: net.ParseIP("10.9.0.1").To4(), Table: 254}
	ll6 := netlink.Route{LinkIndex: idx, Dst: cidr("fe80::/64"), Protocol: 2, Table: 254}
	ips := []ipConf{
		{addr: netip.MustParsePrefix("10.1.0.5/24"), gw: netip.MustParseAddr("10.1.0.1")},
		{addr: netip.MustParsePrefix("fd00::5/64")},
	}
	used := map[int]bool{100: true, 101: true, 103: true}
	got := plan(ips, []netlink.Route{subnet4, def4, other, ll6}, used, idx)
	if len(got) != 2 || got[0].table != 102 || got[1].table != 104 || got[0].src != ips[0].addr.Addr() || got[1].src != ips[1].addr.Addr() {
		t.Fatalf("plans %+v", got)
	}
	var s []string
	for _, r := range got[0].routes {
		s = append(s, r.String())
		if r.Table != 102 || r.Flags != 0 || r.LinkIndex != idx {
			t.Errorf("route %s: table %d flags %d", r, r.Table, r.Flags)
		}
	}
	// default via gw first, then the subnet route (src in subnet), the default (gw in subnet), fe80 (neither).
	if len(got[0].routes) != 4 || got[0].routes[0].Dst.String() != "0.0.0.0/0" || !got[0].routes[1].Src.Equal(subnet4.Src) ||
		!got[0].routes[2].Gw.Equal(def4.Gw) || got[0].routes[3].Dst.String() != "fe80::/64" {
		t.Errorf("table 102: %v", s)
	}
	if len(got[1].routes) != 1 || got[1].routes[0].Dst.String() != "fe80::/64" || got[1].routes[0].Table != 104 {
		t.Errorf("table 104: %+v", got[1].routes)
	}
	if subnet4.Table != 254 || subnet4.Flags != 16 {
		t.Error("plan changed the caller's routes")
	}
	fixed := fixedPlan(ips, 300)
	if len(fixed) != 2 || fixed[0].table != 300 || fixed[1].table != 300 || len(fixed[0].routes) != 0 {
		t.Errorf("fixed %+v", fixed)
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
