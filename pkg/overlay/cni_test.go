package overlay

import (
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
)

func TestIPAMStdin(t *testing.T) {
	const head = `{"cniVersion":"1.0.0","name":"ov","type":"vxlan-overlay","podCIDR":"10.244.1.0/24","mtu":1400,"runtimeConfig":{"x":1},"ipam":`
	injected := []any{[]any{map[string]any{"subnet": "10.244.1.0/24"}}}
	for _, tc := range []struct {
		name      string
		ipam      string
		unchanged bool           // stdin passed through byte for byte
		want      map[string]any // else: the ipam section that must come out
	}{
		{name: "host-local without subnet", ipam: `{"type":"host-local","dataDir":"/var/lib/x","routes":[{"dst":"0.0.0.0/0"}]}`, want: map[string]any{
			"type": "host-local", "dataDir": "/var/lib/x", "routes": []any{map[string]any{"dst": "0.0.0.0/0"}}, "ranges": injected,
		}},
		{name: "host-local bare", ipam: `{"type":"host-local"}`, want: map[string]any{"type": "host-local", "ranges": injected}},
		{name: "host-local with subnet", ipam: `{"type":"host-local","subnet":"10.244.1.0/25"}`, unchanged: true},
		{name: "host-local with ranges", ipam: `{"type":"host-local","ranges":[[{"subnet":"10.244.1.128/25"}]]}`, unchanged: true},
		{name: "host-local with empty ranges", ipam: `{"type":"host-local","ranges":[]}`, unchanged: true},
		{name: "other ipam", ipam: `{"type":"static","addresses":[{"address":"10.244.1.9/24"}]}`, unchanged: true},
		{name: "dhcp", ipam: `{"type":"dhcp"}`, unchanged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdin := []byte(head + tc.ipam + `}`)
			n, err := Parse(VXLAN, stdin)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out, err := ipamStdin(stdin, n)
			if err != nil {
				t.Fatalf("ipamStdin: %v", err)
			}
			if tc.unchanged {
				if string(out) != string(stdin) {
					t.Errorf("stdin changed:\n got %s\nwant %s", out, stdin)
				}
				return
			}
			var got, orig map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("output is not JSON: %v: %s", err, out)
			}
			if err := json.Unmarshal(stdin, &orig); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got["ipam"], tc.want) {
				t.Errorf("ipam = %v, want %v", got["ipam"], tc.want)
			}
			delete(got, "ipam")
			delete(orig, "ipam")
			if !reflect.DeepEqual(got, orig) {
				t.Errorf("keys outside ipam changed:\n got %v\nwant %v", got, orig)
			}
		})
	}
}

func TestIPAMStdinIPv6(t *testing.T) {
	stdin := []byte(cfg("vxlan-overlay", "fd00:10:244:1::/64", ""))
	n, err := Parse(VXLAN, stdin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ipamStdin(stdin, n)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"ranges":[[{"subnet":"fd00:10:244:1::/64"}]]`) {
		t.Errorf("ipamStdin = %s, want ranges of the IPv6 podCIDR", out)
	}
}

func TestMasqPrefixes(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name    string
		ips     []netip.Addr
		cluster netip.Prefix
		want    []netip.Prefix
	}{
		{"ipv4", []netip.Addr{a("10.244.1.5")}, p("10.244.0.0/16"), []netip.Prefix{p("10.244.1.5/16")}},
		{"other family dropped", []netip.Addr{a("10.244.1.5"), a("fd00::5")}, p("10.244.0.0/16"), []netip.Prefix{p("10.244.1.5/16")}},
		{"ipv6", []netip.Addr{a("10.244.1.5"), a("fd00:10:244:1::5")}, p("fd00:10:244::/48"), []netip.Prefix{p("fd00:10:244:1::5/48")}},
		{"two", []netip.Addr{a("10.244.1.5"), a("10.244.1.6")}, p("10.0.0.0/8"), []netip.Prefix{p("10.244.1.5/8"), p("10.244.1.6/8")}},
		{"none", nil, p("10.244.0.0/16"), []netip.Prefix{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := masqPrefixes(tc.ips, tc.cluster); !slices.Equal(got, tc.want) {
				t.Errorf("masqPrefixes = %v, want %v", got, tc.want)
			}
		})
	}
}

func ipc(s string) *current.IPConfig {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return &current.IPConfig{Address: *n}
}

func TestPodAddresses(t *testing.T) {
	_, dflt, _ := net.ParseCIDR("0.0.0.0/0")
	_, svc, _ := net.ParseCIDR("10.96.0.0/12")
	svcHost := net.IPNet{IP: net.ParseIP("10.96.0.1").To4(), Mask: net.CIDRMask(12, 32)}
	pod := netip.MustParsePrefix("10.244.1.0/24")
	for _, tc := range []struct {
		name   string
		res    *current.Result
		ips    []string
		extra  []string
		field  string // error: code 7 naming this
		substr string
	}{
		{
			name:  "one address, routes",
			res:   &current.Result{IPs: []*current.IPConfig{ipc("10.244.1.5/24")}, Routes: []*types.Route{{Dst: *dflt}, {Dst: *svc}, {Dst: svcHost}}},
			ips:   []string{"10.244.1.5"},
			extra: []string{"10.96.0.0/12"}, // the same destination twice is one route
		},
		{
			name: "other family skipped",
			res:  &current.Result{IPs: []*current.IPConfig{ipc("fd00::5/64"), ipc("10.244.1.5/24"), ipc("10.244.1.6/24")}},
			ips:  []string{"10.244.1.5", "10.244.1.6"},
		},
		{
			name:   "outside podCIDR",
			res:    &current.Result{IPs: []*current.IPConfig{ipc("10.244.1.5/24"), ipc("10.244.2.5/24")}},
			field:  "ipam",
			substr: "10.244.2.5",
		},
		{
			name:   "only the other family",
			res:    &current.Result{IPs: []*current.IPConfig{ipc("fd00::5/64")}},
			field:  "ipam",
			substr: "no address",
		},
		{
			name:   "empty",
			res:    &current.Result{},
			field:  "ipam",
			substr: "no address",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ips, extra, err := podAddresses(tc.res, pod)
			if tc.field != "" {
				if conf.Code(err) != conf.CodeInvalidConfig || !strings.HasPrefix(err.Error(), tc.field+":") || !strings.Contains(err.Error(), tc.substr) {
					t.Fatalf("err = %v (code %d), want code 7 naming %q and %q", err, conf.Code(err), tc.field, tc.substr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gotIPs, gotExtra []string
			for _, ip := range ips {
				gotIPs = append(gotIPs, ip.String())
			}
			for _, p := range extra {
				gotExtra = append(gotExtra, p.String())
			}
			if !slices.Equal(gotIPs, tc.ips) || !slices.Equal(gotExtra, tc.extra) {
				t.Errorf("podAddresses = %v, %v; want %v, %v", gotIPs, gotExtra, tc.ips, tc.extra)
			}
		})
	}
}
