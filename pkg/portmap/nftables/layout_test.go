package nftables

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	fwnft "github.com/netloom/netloom/pkg/firewall/nftables"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/portmap"
)

var (
	keyA = firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "eth0"}
	keyB = firewall.Key{Network: "mynet", ContainerID: "c2", IfName: "eth0"}
	keyC = firewall.Key{Network: "other", ContainerID: "c3", IfName: "eth0"}
)

func mapping(proto, host string, hostPort uint16, pod string, podPort uint16) portmap.Mapping {
	p := netip.MustParsePrefix(pod)
	m := portmap.Mapping{Protocol: proto, HostPort: hostPort, PodIP: p.Addr(), PodPort: podPort, PodSubnet: p.Masked()}
	if host != "" {
		m.HostIP = netip.MustParseAddr(host)
	}
	return m
}

// show renders an element as one line: set, what it means, and its owner for the maps that hold one.
func show(e elem) string {
	s := describeElem(e)
	if len(e.data) == ownerLen && e.set != setAttachments {
		s += " owner " + owner(e.data).String()
	}
	return s
}

func showAll(es []elem) string {
	var lines []string
	for _, e := range es {
		lines = append(lines, show(e))
	}
	return strings.Join(lines, "\n")
}

func TestOwnerIsTheFirewallHash(t *testing.T) {
	// pkg/firewall/nftables (and the reference plugins) start their comments with the same hash, so one
	// grep finds an attachment's masquerade and port forwarding.
	for _, k := range []firewall.Key{keyA, keyB, keyC} {
		if got, want := ownerOf(k).String(), fwnft.Comment(k)[:2*ownerLen+1]; got != want {
			t.Errorf("owner of %v = %s, firewall hash %s", k, got, want)
		}
	}
	if got, want := comment(keyA), "d23676b4f2d9fe04-f4d01f2ef4b92245 mynet/c1/eth0"; got != want {
		t.Errorf("comment = %q, want %q", got, want)
	}
	if got := comment(firewall.Key{Network: `q"t`, ContainerID: "x", IfName: "e"}); !strings.HasSuffix(got, " qt/x/e") {
		t.Errorf("quotes kept: %q", got)
	}
	long := firewall.Key{Network: "n", ContainerID: strings.Repeat("a", 300), IfName: "eth0"}
	if got := comment(long); len(got) != commentMax {
		t.Errorf("long comment has %d bytes, want %d", len(got), commentMax)
	}
	if got := ownerName(comment(keyA)); got != "mynet/c1/eth0" {
		t.Errorf("ownerName = %q", got)
	}
	if o, ok := ownerFromComment(comment(keyA)); !ok || o != ownerOf(keyA) {
		t.Errorf("ownerFromComment = %v %v", o, ok)
	}
	if _, ok := ownerFromComment("someone else's"); ok {
		t.Error("ownerFromComment accepted a foreign comment")
	}
}

func TestDesired(t *testing.T) {
	v4 := mapping("tcp", "", 8080, "10.88.0.5/16", 80)
	v4udp := mapping("udp", "192.0.2.1", 53, "10.88.0.5/16", 5353)
	v6 := mapping("tcp", "", 8080, "fd88::5/64", 80)
	const a = " owner d23676b4f2d9fe04-f4d01f2ef4b92245"
	for _, tc := range []struct {
		name string
		ms   []portmap.Mapping
		o    portmap.Options
		want []string
	}{
		{"snat, both families", []portmap.Mapping{v4, v4udp, v6}, portmap.Options{SNAT: true}, []string{
			"owner of tcp/8080 (all addresses) in owner4_any" + a,
			"forwarding of tcp/8080 (all addresses) to 10.88.0.5:80 in dnat4_any",
			"owner of udp 192.0.2.1:53 in owner4" + a,
			"forwarding of udp 192.0.2.1:53 to 10.88.0.5:5353 in dnat4",
			"owner of tcp/8080 (all addresses) in owner6_any" + a,
			"forwarding of tcp/8080 (all addresses) to [fd88::5]:80 in dnat6_any",
			"masquerade of 10.88.0.0/16 to 10.88.0.5 in masq4_16" + a,
			"masquerade of 127.0.0.0/8 to 10.88.0.5 in masq4_8" + a,
			"masquerade of fd88::/64 to fd88::5 in masq6_64" + a,
			"masquerade of ::1/128 to fd88::5 in masq6_128" + a,
			"record in attachments",
		}},
		{"masqAll", []portmap.Mapping{v4, v6}, portmap.Options{SNAT: true, MasqAll: true}, []string{
			"owner of tcp/8080 (all addresses) in owner4_any" + a,
			"forwarding of tcp/8080 (all addresses) to 10.88.0.5:80 in dnat4_any",
			"owner of tcp/8080 (all addresses) in owner6_any" + a,
			"forwarding of tcp/8080 (all addresses) to [fd88::5]:80 in dnat6_any",
			"masquerade of every source to 10.88.0.5 in masqall4" + a,
			"masquerade of every source to fd88::5 in masqall6" + a,
			"record in attachments",
		}},
		{"no snat, unspecified host address, repeated mapping", []portmap.Mapping{mapping("sctp", "0.0.0.0", 9, "10.88.0.5/16", 9), v4, v4}, portmap.Options{}, []string{
			"owner of sctp/9 (all addresses) in owner4_any" + a,
			"forwarding of sctp/9 (all addresses) to 10.88.0.5:9 in dnat4_any",
			"owner of tcp/8080 (all addresses) in owner4_any" + a,
			"forwarding of tcp/8080 (all addresses) to 10.88.0.5:80 in dnat4_any",
			"record in attachments",
		}},
		{"pod subnet unknown", []portmap.Mapping{{Protocol: "tcp", HostPort: 1, PodIP: netip.MustParseAddr("10.1.1.1"), PodPort: 2}}, portmap.Options{SNAT: true}, []string{
			"owner of tcp/1 (all addresses) in owner4_any" + a,
			"forwarding of tcp/1 (all addresses) to 10.1.1.1:2 in dnat4_any",
			"masquerade of 10.1.1.1/32 to 10.1.1.1 in masq4_32" + a,
			"masquerade of 127.0.0.0/8 to 10.1.1.1 in masq4_8" + a,
			"record in attachments",
		}},
		{"nothing", nil, portmap.Options{SNAT: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := desired(keyA, tc.ms, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := showAll(p.elems), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("elements:\n%s\nwant:\n%s", got, want)
			}
			if len(p.elems) > 0 {
				last := p.elems[len(p.elems)-1]
				if last.set != setAttachments || string(last.data) != string(elemsDigest(p.elems[:len(p.elems)-1])) {
					t.Errorf("record %x does not hold the digest of the others", last.data)
				}
			}
			for _, e := range p.elems {
				if e.comment != comment(keyA) {
					t.Errorf("%s: comment %q", show(e), e.comment)
				}
			}
		})
	}
}

func TestDesiredRefuses(t *testing.T) {
	good := mapping("tcp", "", 80, "10.88.0.5/16", 80)
	with := func(f func(*portmap.Mapping)) portmap.Mapping { m := good; f(&m); return m }
	for _, tc := range []struct {
		name string
		ms   []portmap.Mapping
		want string
	}{
		{"protocol", []portmap.Mapping{with(func(m *portmap.Mapping) { m.Protocol = "icmp" })}, "protocol"},
		{"host port 0", []portmap.Mapping{with(func(m *portmap.Mapping) { m.HostPort = 0 })}, "port 0"},
		{"no pod", []portmap.Mapping{with(func(m *portmap.Mapping) { m.PodIP = netip.Addr{} })}, "pod address"},
		{"4in6 pod", []portmap.Mapping{with(func(m *portmap.Mapping) { m.PodIP = netip.MustParseAddr("::ffff:10.88.0.5") })}, "pod address"},
		{"family", []portmap.Mapping{with(func(m *portmap.Mapping) { m.HostIP = netip.MustParseAddr("fd00::1") })}, "family"},
		{"subnet", []portmap.Mapping{with(func(m *portmap.Mapping) { m.PodSubnet = netip.MustParsePrefix("10.99.0.0/16") })}, "does not contain"},
		{"same port twice", []portmap.Mapping{good, with(func(m *portmap.Mapping) { m.PodPort = 81 })}, "also forwarded"},
		{"two subnets", []portmap.Mapping{good, with(func(m *portmap.Mapping) { m.HostPort = 81; m.PodSubnet = netip.MustParsePrefix("10.88.0.0/24") })}, "subnets"},
	} {
		if _, err := desired(keyA, tc.ms, portmap.Options{SNAT: true}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one about %q", tc.name, err, tc.want)
		}
	}
}

func TestDigestIgnoresOrderAndComments(t *testing.T) {
	p, err := desired(keyA, []portmap.Mapping{mapping("tcp", "", 1, "10.0.0.2/24", 1), mapping("udp", "", 2, "10.0.0.2/24", 2)}, portmap.Options{SNAT: true})
	if err != nil {
		t.Fatal(err)
	}
	es := p.elems[:len(p.elems)-1]
	rev := make([]elem, len(es))
	for i, e := range es {
		e.comment = "read back"
		rev[len(es)-1-i] = e
	}
	if hex.EncodeToString(elemsDigest(es)) != hex.EncodeToString(elemsDigest(rev)) {
		t.Error("digest depends on order or comments")
	}
	if hex.EncodeToString(elemsDigest(es)) == hex.EncodeToString(elemsDigest(es[1:])) {
		t.Error("digest does not see a missing element")
	}
}

// The expected texts are `nft --debug=netlink` for the rules in the package comment, in describe's
// notation (meta key 15 nfproto, 16 l4proto; payload base 1 network, 2 transport; ct key 2 status).
// TestSkeletonMatchesNFT checks the same against nft itself, as root.
func TestSkeletonRules(t *testing.T) {
	var got []string
	rules := skeletonRules(portmap.Options{})
	for _, l := range []masqLen{{ipv4, 16}, {ipv4, 32}, {ipv6, 64}, {ipv6, 60}, {ipv6, 128}} {
		rules = append(rules, l.rule())
	}
	for _, r := range rules {
		got = append(got, r.chain+" "+r.comment+": "+expr.Describe(r.exprs))
	}
	const dnated = "[ ct load 2 => reg 1 ][ bitwise reg 1 = ( reg 1 & 20000000 ) ^ 00000000 ][ cmp neq reg 1 00000000 ]"
	hook := func(ch, f, proto string) string {
		return ch + " to local " + f + " addresses: [ meta load 15 => reg 1 ][ cmp eq reg 1 " + proto + " ]" +
			"[ fib daddr=true type=true => reg 1 ][ cmp eq reg 1 02000000 ][ verdict -3 hostports ]"
	}
	want := []string{
		hook("prerouting", "ipv4", "02"), hook("prerouting", "ipv6", "0a"),
		hook("output", "ipv4", "02"), hook("output", "ipv6", "0a"),
		"hostports host ports on one ipv4 address: [ meta load 15 => reg 1 ][ cmp eq reg 1 02 ][ meta load 16 => reg 1 ]" +
			"[ payload load 4b @ base 1 + 16 => reg 9 ][ payload load 2b @ base 2 + 2 => reg 10 ]" +
			"[ lookup reg 1 set dnat4 dreg 1 ][ nat 1 family 2 addr_min reg 1 proto_min reg 9 ]",
		"hostports host ports on every ipv4 address: [ meta load 15 => reg 1 ][ cmp eq reg 1 02 ][ meta load 16 => reg 1 ]" +
			"[ payload load 2b @ base 2 + 2 => reg 9 ][ lookup reg 1 set dnat4_any dreg 1 ][ nat 1 family 2 addr_min reg 1 proto_min reg 9 ]",
		"hostports host ports on one ipv6 address: [ meta load 15 => reg 1 ][ cmp eq reg 1 0a ][ meta load 16 => reg 1 ]" +
			"[ payload load 16b @ base 1 + 24 => reg 9 ][ payload load 2b @ base 2 + 2 => reg 13 ]" +
			"[ lookup reg 1 set dnat6 dreg 1 ][ nat 1 family 10 addr_min reg 1 proto_min reg 2 ]",
		"hostports host ports on every ipv6 address: [ meta load 15 => reg 1 ][ cmp eq reg 1 0a ][ meta load 16 => reg 1 ]" +
			"[ payload load 2b @ base 2 + 2 => reg 9 ][ lookup reg 1 set dnat6_any dreg 1 ][ nat 1 family 10 addr_min reg 1 proto_min reg 2 ]",
		"postrouting masquerade every ipv4 source: " + dnated + "[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ]" +
			"[ payload load 4b @ base 1 + 16 => reg 1 ][ lookup reg 1 set masqall4 ][ masq ]",
		"postrouting masquerade every ipv6 source: " + dnated + "[ meta load 15 => reg 1 ][ cmp eq reg 1 0a ]" +
			"[ payload load 16b @ base 1 + 24 => reg 1 ][ lookup reg 1 set masqall6 ][ masq ]",
		"masq4_16 masquerade ipv4 sources in the pod's /16: " + dnated + "[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ]" +
			"[ payload load 4b @ base 1 + 12 => reg 1 ][ bitwise reg 1 = ( reg 1 & ffff0000 ) ^ 00000000 ]" +
			"[ payload load 4b @ base 1 + 16 => reg 9 ][ lookup reg 1 set masq4_16 ][ masq ]",
		"masq4_32 masquerade ipv4 sources in the pod's /32: " + dnated + "[ meta load 15 => reg 1 ][ cmp eq reg 1 02 ]" +
			"[ payload load 4b @ base 1 + 12 => reg 1 ][ payload load 4b @ base 1 + 16 => reg 9 ][ lookup reg 1 set masq4_32 ][ masq ]",
		"masq6_64 masquerade ipv6 sources in the pod's /64: " + dnated + "[ meta load 15 => reg 1 ][ cmp eq reg 1 0a ]" +
			"[ payload load 16b @ base 1 + 8 => reg 1 ][ bitwise reg 1 = ( reg 1 & ffffffffffffffff0000000000000000 ) ^ 00000000000000000000000000000000 ]" +
			"[ payload load 16b @ base 1 + 24 => reg 2 ][ lookup reg 1 set masq6_64 ][ masq ]",
		"masq6_60 masquerade ipv6 sources in the pod's /60: " + dnated + "[ meta load 15 => reg 1 ][ cmp eq reg 1 0a ]" +
			"[ payload load 16b @ base 1 + 8 => reg 1 ][ bitwise reg 1 = ( reg 1 & fffffffffffffff00000000000000000 ) ^ 00000000000000000000000000000000 ]" +
			"[ payload load 16b @ base 1 + 24 => reg 2 ][ lookup reg 1 set masq6_60 ][ masq ]",
		"masq6_128 masquerade ipv6 sources in the pod's /128: " + dnated + "[ meta load 15 => reg 1 ][ cmp eq reg 1 0a ]" +
			"[ payload load 16b @ base 1 + 8 => reg 1 ][ payload load 16b @ base 1 + 24 => reg 2 ][ lookup reg 1 set masq6_128 ][ masq ]",
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("skeleton:\n%s\nwant:\n%s", g, w)
	}
}

func TestConditions(t *testing.T) {
	o := portmap.Options{ConditionsV4: []string{"ip daddr 192.0.2.0/24", `iifname "eth0"`}}
	rules := skeletonRules(o)
	for _, r := range rules[:4] {
		if r.exprs != nil {
			t.Errorf("hook rule %q built here, not by nft", r.comment)
		}
	}
	if rules[0].comment != rules[2].comment || !strings.HasPrefix(rules[0].comment, "to local ipv4 addresses, conditions ") {
		t.Errorf("hook comments %q, %q", rules[0].comment, rules[2].comment)
	}
	if rules[1].comment != "to local ipv6 addresses" {
		t.Errorf("ipv6 hook comment %q", rules[1].comment)
	}
	if hookComment(ipv4, o.ConditionsV4) == hookComment(ipv4, []string{"ip daddr 192.0.2.0/25"}) {
		t.Error("other conditions, same comment")
	}
	want := `add table inet netloom_portmap { comment "netloom portmap"; }
add chain inet netloom_portmap hostports
add chain inet netloom_portmap prerouting { type nat hook prerouting priority -100; policy accept; }
add chain inet netloom_portmap output { type nat hook output priority -100; policy accept; }
flush chain inet netloom_portmap prerouting
flush chain inet netloom_portmap output
add rule inet netloom_portmap prerouting meta nfproto ipv4 ip daddr 192.0.2.0/24 iifname "eth0" fib daddr type local jump hostports comment "` + rules[0].comment + `"
add rule inet netloom_portmap prerouting meta nfproto ipv6 fib daddr type local jump hostports comment "to local ipv6 addresses"
add rule inet netloom_portmap output meta nfproto ipv4 ip daddr 192.0.2.0/24 iifname "eth0" fib daddr type local jump hostports comment "` + rules[0].comment + `"
add rule inet netloom_portmap output meta nfproto ipv6 fib daddr type local jump hostports comment "to local ipv6 addresses"
`
	if got := nftScript(o); got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
	for _, bad := range []string{"ip daddr 1.2.3.4; flush ruleset", "accept\nflush ruleset", "# x"} {
		if err := checkConditions(portmap.Options{ConditionsV6: []string{bad}}); err == nil {
			t.Errorf("condition %q accepted", bad)
		}
	}
	if err := checkConditions(o); err != nil {
		t.Error(err)
	}
}

func TestStaleChains(t *testing.T) {
	want := skeletonRules(portmap.Options{})
	var intact []nftnl.Rule
	for _, r := range want {
		intact = append(intact, nftnl.Rule{Chain: r.chain, Comment: r.comment})
	}
	chains := chainDefs()
	if s := staleChains(intact, want, chains); len(s) != 0 {
		t.Errorf("intact skeleton has stale chains %v", s)
	}
	if s := staleChains(nil, want, chains); len(s) != len(chains) {
		t.Errorf("empty table: stale %v", s)
	}
	dup := append(append([]nftnl.Rule(nil), intact...), intact[4])
	if s := staleChains(dup, want, chains); len(s) != 1 || !s[chainHostports] {
		t.Errorf("duplicated rule: stale %v", s)
	}
	if s := staleChains(intact, skeletonRules(portmap.Options{ConditionsV6: []string{"ip6 daddr fd00::/8"}}), chains); len(s) != 2 || !s[chainPrerouting] || !s[chainOutput] {
		t.Errorf("new conditions: stale %v", s)
	}
	// A prefix length not seen before needs its chain; the ones there are need nothing.
	l16, l8 := masqLen{ipv4, 16}, masqLen{ipv4, 8}
	withLen := append(intact, nftnl.Rule{Chain: l8.name(), Comment: l8.rule().comment})
	s := staleChains(withLen, append(want, l16.rule(), l8.rule()), append(chains, l16.chainDef(), l8.chainDef()))
	if len(s) != 1 || !s[l16.name()] {
		t.Errorf("new prefix length: stale %v", s)
	}
}

func TestHintQueries(t *testing.T) {
	hint := []portmap.HostKey{
		{Protocol: "tcp", HostPort: 80},
		{Protocol: "udp", HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 53},
		{Protocol: "tcp", HostIP: netip.IPv6Unspecified(), HostPort: 80}, // same as the first
		{Protocol: "icmp", HostPort: 1},                                  // ignored
	}
	var got []string
	for _, q := range hintQueries(hint) {
		got = append(got, q.Set+" "+parseHostKey(q.Set, q.Key).String())
	}
	want := []string{
		"owner4_any tcp/80 (all addresses)", "dnat4_any tcp/80 (all addresses)",
		"owner6_any tcp/80 (all addresses)", "dnat6_any tcp/80 (all addresses)",
		"owner4 udp 192.0.2.1:53", "dnat4 udp 192.0.2.1:53",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("queries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// stateOf is the kernel state after Add of each plan.
func stateOf(ps ...plan) state {
	st := state{byID: map[string]elem{}}
	for _, p := range ps {
		for _, e := range p.elems {
			st.elems = append(st.elems, e)
			st.byID[e.id()] = e
		}
	}
	return st
}

func mustPlan(t *testing.T, k firewall.Key, o portmap.Options, ms ...portmap.Mapping) plan {
	t.Helper()
	p, err := desired(k, ms, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConflictAndInTheWay(t *testing.T) {
	snat := portmap.Options{SNAT: true}
	a := mustPlan(t, keyA, snat, mapping("tcp", "", 80, "10.88.0.5/16", 80), mapping("tcp", "", 81, "10.88.0.5/16", 81))
	b := mustPlan(t, keyB, snat, mapping("tcp", "", 80, "10.88.0.6/16", 80))
	st := stateOf(a)

	var ce *portmap.ConflictError
	if err := st.conflict(b); !errors.As(err, &ce) || ce.Owner != "mynet/c1/eth0" || ce.Key.String() != "tcp/80 (all addresses)" {
		t.Errorf("conflict = %v", err)
	}
	// The same pod address and port does not make it B's.
	same := mustPlan(t, keyB, snat, mapping("tcp", "", 80, "10.88.0.5/16", 80))
	if err := st.conflict(same); !errors.As(err, &ce) {
		t.Errorf("same target, other owner: conflict = %v", err)
	}
	// One host address and all addresses may share a port.
	specific := mustPlan(t, keyB, snat, mapping("tcp", "10.0.0.1", 80, "10.88.0.6/16", 80))
	if err := st.conflict(specific); err != nil {
		t.Errorf("specific address: %v", err)
	}
	if got := st.inTheWay(a); len(got) != 0 {
		t.Errorf("re-adding the same: in the way:\n%s", showAll(got))
	}

	// A again with port 81 gone and 80 moved: its old 81, old 80 and old record go.
	a2 := mustPlan(t, keyA, snat, mapping("tcp", "", 80, "10.88.0.5/16", 8080))
	want := []string{
		"forwarding of tcp/80 (all addresses) to 10.88.0.5:80 in dnat4_any",
		"owner of tcp/81 (all addresses) in owner4_any owner d23676b4f2d9fe04-f4d01f2ef4b92245",
		"forwarding of tcp/81 (all addresses) to 10.88.0.5:81 in dnat4_any",
		"record in attachments",
	}
	if got := showAll(st.inTheWay(a2)); got != strings.Join(want, "\n") {
		t.Errorf("replacing: in the way:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	// B gets A's pod address (A is stale): A's masquerade elements for it go, nothing else of A's.
	b2 := mustPlan(t, keyB, snat, mapping("tcp", "", 90, "10.88.0.5/16", 80))
	want = []string{
		"masquerade of 10.88.0.0/16 to 10.88.0.5 in masq4_16 owner d23676b4f2d9fe04-f4d01f2ef4b92245",
		"masquerade of 127.0.0.0/8 to 10.88.0.5 in masq4_8 owner d23676b4f2d9fe04-f4d01f2ef4b92245",
	}
	if got := showAll(st.inTheWay(b2)); got != strings.Join(want, "\n") {
		t.Errorf("taking over a pod address: in the way:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestOwnerOfElements(t *testing.T) {
	a := mustPlan(t, keyA, portmap.Options{SNAT: true}, mapping("tcp", "", 80, "10.88.0.5/16", 80))
	st := stateOf(a)
	for _, e := range a.elems {
		if o, ok := st.ownerOf(e); !ok || o != a.owner {
			t.Errorf("%s: owner %v %v", show(e), o, ok)
		}
	}
	// A dnat element whose owner element is gone still names its owner in its comment.
	orphan := a.elems[1]
	delete(st.byID, a.elems[0].id())
	if o, ok := st.ownerOf(orphan); !ok || o != a.owner {
		t.Errorf("orphan: owner %v %v", o, ok)
	}
}

func TestStaleOf(t *testing.T) {
	stale := staleOf("mynet", map[conf.Attachment]bool{keyA.Attachment(): true})
	for _, tc := range []struct {
		k    firewall.Key
		want bool
	}{{keyA, false}, {keyB, true}, {keyC, false}, {firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "net1"}, true}} {
		if got := stale(ownerOf(tc.k)); got != tc.want {
			t.Errorf("stale(%v) = %v, want %v", tc.k, got, tc.want)
		}
	}
}

func TestMasqLenNames(t *testing.T) {
	for _, l := range []masqLen{{ipv4, 8}, {ipv4, 32}, {ipv6, 64}, {ipv6, 128}} {
		if got, ok := parseMasqLen(l.name()); !ok || got != l {
			t.Errorf("parseMasqLen(%q) = %v, %v", l.name(), got, ok)
		}
	}
	for _, name := range []string{"masq4_0", "masq4_33", "masq6_129", "masq4_08", "masq4_x", "masqall4", "masq5_8", "dnat4"} {
		if got, ok := parseMasqLen(name); ok {
			t.Errorf("parseMasqLen(%q) = %v, want none", name, got)
		}
	}
}
