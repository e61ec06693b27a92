package iptables

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/xtables"
)

var (
	keyA  = firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "eth0"}
	keyA1 = firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "net1"} // A's second interface
	keyB  = firewall.Key{Network: "mynet", ContainerID: "c2", IfName: "eth0"}
	keyC  = firewall.Key{Network: "other", ContainerID: "c3", IfName: "eth0"}

	defaults = portmap.Options{SNAT: true, MarkMasqBit: portmap.DefaultMarkMasqBit}
)

// mapping builds a Mapping from "proto hostIP:hostPort podIP/len:podPort"; hostIP "*" is all addresses.
func mapping(t testing.TB, s string) portmap.Mapping {
	t.Helper()
	var proto, host, pod string
	if _, err := fmt.Sscan(s, &proto, &host, &pod); err != nil {
		t.Fatalf("mapping %q: %v", s, err)
	}
	m := portmap.Mapping{Protocol: proto}
	hi := strings.LastIndexByte(host, ':')
	if h := strings.Trim(host[:hi], "[]"); h != "*" {
		m.HostIP = netip.MustParseAddr(h)
	}
	fmt.Sscan(host[hi+1:], &m.HostPort)
	pi := strings.LastIndexByte(pod, ':')
	m.PodSubnet = netip.MustParsePrefix(strings.Trim(pod[:pi], "[]"))
	m.PodIP = m.PodSubnet.Addr()
	fmt.Sscan(pod[pi+1:], &m.PodPort)
	return m
}

func mappings(t testing.TB, s ...string) []portmap.Mapping {
	var out []portmap.Mapping
	for _, x := range s {
		out = append(out, mapping(t, x))
	}
	return out
}

const (
	ipv4 = xtables.IPv4
	ipv6 = xtables.IPv6
)

func newFakeMapper(t *testing.T) (*Mapper, *xtables.Fake) {
	f := xtables.NewFake()
	return newWithTools(Config{Config: xtables.Config{Wait: time.Second}, LockFile: t.TempDir() + "/lock"}, f), f
}

// load sets fam's table of f to text, as iptables-save prints it.
func load(t *testing.T, f *xtables.Fake, fam xtables.Family, text string) {
	t.Helper()
	if err := f.Load(fam, text); err != nil {
		t.Fatal(err)
	}
}

// parseSave reads iptables-save output as the Mapper does.
func parseSave(t *testing.T, text string) table {
	t.Helper()
	tb, err := xtables.Parse(text, natTable, xtables.CNIChains)
	if err != nil {
		t.Fatal(err)
	}
	return newTable(tb)
}

const (
	cA  = `"dnat name: \"mynet\" id: \"c1\" if: \"eth0\""`
	chA = "CNI-DN-f0bca4ac77cde1bf2f3da"
)

// The restore batches a fresh node gets: the shared chains, then the attachment's chain and jumps.
func TestAddGolden(t *testing.T) {
	skeleton := `*nat
-N CNI-HOSTPORT-DNAT
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
`
	snat := `-N CNI-HOSTPORT-SETMARK
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
-N CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
`
	for _, tc := range []struct {
		name   string
		ms     []string
		o      portmap.Options
		v4, v6 string // "" when no restore runs
	}{{
		name: "snat, both families",
		ms:   []string{"tcp *:8080 10.22.0.5/24:80", "udp 192.0.2.1:53 10.22.0.5/24:5353", "tcp *:8080 [fd00::5/64]:80"},
		o:    defaults,
		v4: skeleton + snat + `-N ` + chA + `
-A ` + chA + ` -s 10.22.0.0/24 -d 192.0.2.1/32 -p udp -m udp --dport 53 -m comment --comment ` + cA + ` -j CNI-HOSTPORT-SETMARK
-A ` + chA + ` -s 127.0.0.0/8 -d 192.0.2.1/32 -p udp -m udp --dport 53 -m comment --comment ` + cA + ` -j CNI-HOSTPORT-SETMARK
-A ` + chA + ` -d 192.0.2.1/32 -p udp -m udp --dport 53 -m comment --comment ` + cA + ` -j DNAT --to-destination 10.22.0.5:5353
-A ` + chA + ` -s 10.22.0.0/24 -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j CNI-HOSTPORT-SETMARK
-A ` + chA + ` -s 127.0.0.0/8 -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j CNI-HOSTPORT-SETMARK
-A ` + chA + ` -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j DNAT --to-destination 10.22.0.5:80
-I CNI-HOSTPORT-DNAT 1 -p udp -m comment --comment ` + cA + ` -m multiport --dports 53 -j ` + chA + `
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment ` + cA + ` -m multiport --dports 8080 -j ` + chA + `
COMMIT
`,
		v6: skeleton + snat + `-N ` + chA + `
-A ` + chA + ` -s fd00::/64 -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j CNI-HOSTPORT-SETMARK
-A ` + chA + ` -s ::1/128 -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j CNI-HOSTPORT-SETMARK
-A ` + chA + ` -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j DNAT --to-destination [fd00::5]:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment ` + cA + ` -m multiport --dports 8080 -j ` + chA + `
COMMIT
`,
	}, {
		name: "masqAll marks every connection, as the reference's -s 0.0.0.0/0",
		ms:   []string{"tcp *:8080 10.22.0.5/24:80"},
		o:    portmap.Options{SNAT: true, MasqAll: true, MarkMasqBit: 14},
		v4: strings.ReplaceAll(skeleton+snat, "0x2000", "0x4000") + `-N ` + chA + `
-A ` + chA + ` -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j CNI-HOSTPORT-SETMARK
-A ` + chA + ` -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j DNAT --to-destination 10.22.0.5:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment ` + cA + ` -m multiport --dports 8080 -j ` + chA + `
COMMIT
`,
	}, {
		name: "no snat: no marks, no mark chains; masqAll needs snat, as in the reference",
		ms:   []string{"sctp *:9000 10.22.0.5/24:9000"},
		o:    portmap.Options{MasqAll: true},
		v4: skeleton + `-N ` + chA + `
-A ` + chA + ` -p sctp -m sctp --dport 9000 -m comment --comment ` + cA + ` -j DNAT --to-destination 10.22.0.5:9000
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment ` + cA + ` -m multiport --dports 9000 -j ` + chA + `
COMMIT
`,
	}, {
		name: "external set-mark chain and conditions",
		ms:   []string{"tcp *:8080 10.22.0.5/24:80"},
		o:    portmap.Options{SNAT: true, ExternalSetMarkChain: "KUBE-MARK-MASQ", ConditionsV4: []string{"-m", "mark", "!", "--mark", "0x1", "!", "-i", "eth9"}},
		v4: skeleton + `-N ` + chA + `
-A ` + chA + ` -s 10.22.0.0/24 -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j KUBE-MARK-MASQ
-A ` + chA + ` -s 127.0.0.0/8 -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j KUBE-MARK-MASQ
-A ` + chA + ` -p tcp -m tcp --dport 8080 -m comment --comment ` + cA + ` -j DNAT --to-destination 10.22.0.5:80
-A CNI-HOSTPORT-DNAT ! -i eth9 -p tcp -m comment --comment ` + cA + ` -m multiport --dports 8080 -m mark ! --mark 0x1 -j ` + chA + `
COMMIT
`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, f := newFakeMapper(t)
			if tc.o.ExternalSetMarkChain != "" {
				f.Tables[ipv4].Chains[tc.o.ExternalSetMarkChain] = true
			}
			ms := mappings(t, tc.ms...)
			if err := m.Add(keyA, ms, tc.o); err != nil {
				t.Fatal(err)
			}
			for fam, want := range [2]string{tc.v4, tc.v6} {
				var got string
				if len(f.Restores[fam]) > 0 {
					got = f.Restores[fam][0]
				}
				if got != want {
					t.Errorf("%v restore:\n%s\nwant:\n%s", xtables.Family(fam), got, want)
				}
			}
			if err := m.Check(keyA, ms, tc.o); err != nil {
				t.Errorf("Check after Add: %v", err)
			}
			// Idempotent, and without writing anything.
			before := [2]int{len(f.Restores[0]), len(f.Restores[1])}
			if err := m.Add(keyA, ms, tc.o); err != nil {
				t.Fatal(err)
			}
			if after := [2]int{len(f.Restores[0]), len(f.Restores[1])}; after != before {
				t.Errorf("second Add ran restore: %v -> %v\n%v", before, after, f.Restores)
			}
		})
	}
}

func TestMultiportSplitsAt15(t *testing.T) {
	m, f := newFakeMapper(t)
	var ms []portmap.Mapping
	for p := range 16 {
		ms = append(ms, mapping(t, fmt.Sprintf("tcp *:%d 10.22.0.5/24:%d", 1000+p, 80)))
	}
	if err := m.Add(keyA, ms, defaults); err != nil {
		t.Fatal(err)
	}
	var jumps []string
	for _, r := range f.Tables[ipv4].Rules[TopLevelDNATChain] {
		jumps = append(jumps, r.Option("--dports"))
	}
	want := []string{"1000,1001,1002,1003,1004,1005,1006,1007,1008,1009,1010,1011,1012,1013,1014", "1015"}
	if strings.Join(jumps, " ") != strings.Join(want, " ") {
		t.Errorf("jumps' ports %q, want %q", jumps, want)
	}
}

func TestReAddReplaces(t *testing.T) {
	m, f := newFakeMapper(t)
	if err := m.Add(keyA, mappings(t, "tcp *:8080 10.22.0.5/24:80", "tcp *:8443 [fd00::5/64]:443"), defaults); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(keyB, mappings(t, "tcp *:9090 10.22.0.6/24:80"), defaults); err != nil {
		t.Fatal(err)
	}
	// A now maps another port, and no IPv6 at all.
	if err := m.Add(keyA, mappings(t, "tcp *:8081 10.22.0.5/24:80"), defaults); err != nil {
		t.Fatal(err)
	}
	want := `*nat
-F ` + chA + `
-A ` + chA + ` -s 10.22.0.0/24 -p tcp -m tcp --dport 8081 -m comment --comment ` + cA + ` -j CNI-HOSTPORT-SETMARK
-A ` + chA + ` -s 127.0.0.0/8 -p tcp -m tcp --dport 8081 -m comment --comment ` + cA + ` -j CNI-HOSTPORT-SETMARK
-A ` + chA + ` -p tcp -m tcp --dport 8081 -m comment --comment ` + cA + ` -j DNAT --to-destination 10.22.0.5:80
-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment ` + cA + ` -m multiport --dports 8080 -j ` + chA + `
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment ` + cA + ` -m multiport --dports 8081 -j ` + chA + `
COMMIT
`
	if got := f.Restores[ipv4][2]; got != want {
		t.Errorf("re-Add restore:\n%s\nwant:\n%s", got, want)
	}
	wantV6 := `*nat
-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment ` + cA + ` -m multiport --dports 8443 -j ` + chA + `
-F ` + chA + `
-X ` + chA + `
COMMIT
`
	if got := f.Restores[ipv6][1]; got != wantV6 {
		t.Errorf("re-Add IPv6 restore:\n%s\nwant:\n%s", got, wantV6)
	}
	if err := m.Check(keyB, mappings(t, "tcp *:9090 10.22.0.6/24:80"), defaults); err != nil {
		t.Errorf("B disturbed: %v", err)
	}
}

func TestConflict(t *testing.T) {
	m, f := newFakeMapper(t)
	if err := m.Add(keyA, mappings(t, "tcp *:8080 10.22.0.5/24:80", "udp 192.0.2.1:53 10.22.0.5/24:53", "tcp *:8080 [fd00::5/64]:80"), defaults); err != nil {
		t.Fatal(err)
	}
	before := [2]string{f.Dump(ipv4), f.Dump(ipv6)}
	for _, tc := range []struct {
		name  string
		k     firewall.Key
		ms    []string
		owner string // "" for no conflict
		key   portmap.HostKey
	}{
		{"same key, other pod", keyB, []string{"tcp *:9090 10.22.0.6/24:80", "tcp *:8080 10.22.0.6/24:80"}, "mynet/c1/eth0",
			portmap.HostKey{Protocol: "tcp", HostPort: 8080}},
		{"other interface of the same pod", keyA1, []string{"udp 192.0.2.1:53 10.23.0.5/24:53"}, "mynet/c1/eth0",
			portmap.HostKey{Protocol: "udp", HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 53}},
		{"other network", keyC, []string{"tcp *:8080 [fd00:1::5/64]:80"}, "mynet/c1/eth0",
			portmap.HostKey{Protocol: "tcp", HostPort: 8080}},
		{"one address beside all addresses", keyB, []string{"tcp 192.0.2.1:8080 10.22.0.6/24:80"}, "", portmap.HostKey{}},
		{"all addresses beside one address", keyB, []string{"udp *:53 10.22.0.6/24:53"}, "", portmap.HostKey{}},
		{"other protocol", keyB, []string{"udp *:8080 10.22.0.6/24:80", "sctp *:8080 10.22.0.6/24:80"}, "", portmap.HostKey{}},
		{"owner re-adding", keyA, []string{"tcp *:8080 10.22.0.5/24:80"}, "", portmap.HostKey{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, f := newFakeMapper(t)
			load(t, f, ipv4, before[0])
			load(t, f, ipv6, before[1])
			err := m.Add(tc.k, mappings(t, tc.ms...), defaults)
			if tc.owner == "" {
				if err != nil {
					t.Fatalf("Add: %v", err)
				}
				return
			}
			var c *portmap.ConflictError
			if !errors.As(err, &c) || c.Owner != tc.owner || c.Key != tc.key {
				t.Fatalf("Add = %v, want conflict on %v with %s", err, tc.key, tc.owner)
			}
			if len(f.Restores[0])+len(f.Restores[1]) != 0 {
				t.Errorf("a conflicting Add wrote: %q", f.Restores)
			}
		})
	}
	_ = m
}

// referenceState is what the reference portmap v1.9.1 leaves for network mynet, container ref1, with
// tcp 8080 -> 10.22.0.9/24:80 (iptables-save of a real run, TestRootReference logs it), plus the
// CNI-HOSTPORT-SNAT and CNI-SN chains of releases before 0.7.
const referenceState = `# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-2971b88ad80d9c2247ca7 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
:CNI-HOSTPORT-SNAT - [0:0]
:CNI-SN-2971b88ad80d9c2247ca7 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-2971b88ad80d9c2247ca7 -s 10.22.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-2971b88ad80d9c2247ca7 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-2971b88ad80d9c2247ca7 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.22.0.9:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"mynet\" id: \"ref1\"" -m multiport --dports 8080 -j CNI-DN-2971b88ad80d9c2247ca7
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
-A CNI-HOSTPORT-SNAT -j CNI-SN-2971b88ad80d9c2247ca7
-A CNI-SN-2971b88ad80d9c2247ca7 -j MASQUERADE
COMMIT
`

var keyRef = firewall.Key{Network: "mynet", ContainerID: "ref1", IfName: "eth0"}

func TestReferenceState(t *testing.T) {
	if got := DNATChain("mynet", "ref1"); got != "CNI-DN-2971b88ad80d9c2247ca7" {
		t.Fatalf("DNATChain(mynet, ref1) = %s; fix referenceState", got)
	}
	tb := parseSave(t, referenceState)
	// Its DNAT rules carry no comment: the owner comes from the jump.
	c := tb.conflict(keyB, mappings(t, "tcp *:8080 10.22.0.6/24:80"))
	if c == nil || c.Owner != "mynet/ref1" {
		t.Errorf("conflict with the reference's mapping = %v, want owner mynet/ref1", c)
	}
	// The same container (any interface) re-adding replaces the reference's rules.
	if c := tb.conflict(keyRef, mappings(t, "tcp *:8080 10.22.0.9/24:80")); c != nil {
		t.Errorf("the owner's own re-Add conflicts: %v", c)
	}
	m, f := newFakeMapper(t)
	load(t, f, ipv4, referenceState)
	if err := m.Add(keyRef, mappings(t, "tcp *:8080 10.22.0.9/24:80"), defaults); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(keyRef, mappings(t, "tcp *:8080 10.22.0.9/24:80"), defaults); err != nil {
		t.Errorf("Check after taking over: %v", err)
	}
	if s := f.Dump(ipv4); strings.Contains(s, `id: \"ref1\""`) && !strings.Contains(s, `id: \"ref1\" if: \"eth0\""`) {
		t.Errorf("reference jump left after re-Add:\n%s", s)
	}
	// Remove clears the reference's chain, its jump and the old SN chain.
	load(t, f, ipv4, referenceState)
	if err := m.Remove(keyRef, nil); err != nil {
		t.Fatal(err)
	}
	if s := f.Dump(ipv4); strings.Contains(s, "CNI-DN-") || strings.Contains(s, "CNI-SN-") {
		t.Errorf("Remove left the reference's chains:\n%s", s)
	}
}

func TestRemove(t *testing.T) {
	m, f := newFakeMapper(t)
	for _, a := range []struct {
		k  firewall.Key
		ms []string
	}{
		{keyA, []string{"tcp *:8080 10.22.0.5/24:80", "tcp *:8080 [fd00::5/64]:80"}},
		{keyA1, []string{"tcp *:8081 10.23.0.5/24:80"}},
		{keyB, []string{"tcp *:9090 10.22.0.6/24:80"}},
	} {
		if err := m.Add(a.k, mappings(t, a.ms...), defaults); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Remove(keyA, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(keyA1, mappings(t, "tcp *:8081 10.23.0.5/24:80"), defaults); err != nil {
		t.Errorf("the pod's other interface lost its mapping: %v", err)
	}
	if err := m.Check(keyA, mappings(t, "tcp *:8080 10.22.0.5/24:80"), defaults); err == nil {
		t.Error("Check passes after Remove")
	}
	if s := f.Dump(ipv6); strings.Contains(s, "CNI-DN-") {
		t.Errorf("IPv6 chain left:\n%s", s)
	}
	if err := m.Remove(keyA1, nil); err != nil {
		t.Fatal(err)
	}
	if f.Tables[ipv4].Chains[chA] {
		t.Errorf("chain %s left after both interfaces' Remove", chA)
	}
	n := len(f.Restores[0]) + len(f.Restores[1])
	if err := m.Remove(keyA, nil); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if got := len(f.Restores[0]) + len(f.Restores[1]); got != n {
		t.Errorf("Remove of nothing ran restore")
	}
	if err := m.Check(keyB, mappings(t, "tcp *:9090 10.22.0.6/24:80"), defaults); err != nil {
		t.Errorf("B disturbed: %v", err)
	}
}

func TestGC(t *testing.T) {
	m, f := newFakeMapper(t)
	load(t, f, ipv4, referenceState) // mynet/ref1, no interface in its comment
	adds := []struct {
		k  firewall.Key
		ms []string
	}{
		{keyA, []string{"tcp *:8000 10.22.0.5/24:80", "tcp *:8000 [fd00::5/64]:80"}},
		{keyA1, []string{"tcp *:8001 10.23.0.5/24:80"}},
		{keyB, []string{"tcp *:9090 10.22.0.6/24:80"}},
		{keyC, []string{"tcp *:7070 10.99.0.5/24:80"}},
	}
	for _, a := range adds {
		if err := m.Add(a.k, mappings(t, a.ms...), defaults); err != nil {
			t.Fatal(err)
		}
	}
	// ref1 is valid through another interface than the one its rules were made for: they stay.
	valid := map[conf.Attachment]bool{keyA.Attachment(): true, {ContainerID: "ref1", IfName: "net7"}: true}
	if err := m.GC("mynet", valid); err != nil {
		t.Fatal(err)
	}
	for _, a := range adds {
		err := m.Check(a.k, mappings(t, a.ms...), defaults)
		if gone := a.k == keyA1 || a.k == keyB; gone != (err != nil) {
			t.Errorf("%v after GC: Check = %v", a.k, err)
		}
	}
	if s := f.Dump(ipv4); !strings.Contains(s, `id: \"ref1\"`) {
		t.Errorf("GC removed the reference's mapping of a valid container:\n%s", s)
	}
	if f.Tables[ipv4].Chains[DNATChain("mynet", "c2")] {
		t.Error("GC left c2's chain")
	}
	if err := m.GC("mynet", map[conf.Attachment]bool{}); err != nil {
		t.Fatal(err)
	}
	for fam := range f.Tables {
		s := f.Dump(xtables.Family(fam))
		if strings.Contains(s, "mynet") || !strings.Contains(s, DNATChain("other", "c3")) == (fam == 0) {
			t.Errorf("%v after GC of everything in mynet:\n%s", xtables.Family(fam), s)
		}
	}
}

func TestCheckReports(t *testing.T) {
	m, f := newFakeMapper(t)
	ms := mappings(t, "tcp *:8080 10.22.0.5/24:80")
	if err := m.Add(keyA, ms, defaults); err != nil {
		t.Fatal(err)
	}
	f.Tables[ipv4].Rules[chA] = f.Tables[ipv4].Rules[chA][1:] // lose the hairpin mark
	f.Tables[ipv4].Rules[postrouting] = nil
	err := m.Check(keyA, ms, defaults)
	for _, want := range []string{"lacks rule -s 10.22.0.0/24", "missing: -I POSTROUTING 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check = %v, want it to say %q", err, want)
		}
	}
	delete(f.Tables[ipv4].Chains, chA)
	if err := m.Check(keyA, ms, defaults); err == nil || !strings.Contains(err.Error(), "nat chain "+chA+" is missing") {
		t.Errorf("Check = %v, want chain missing", err)
	}
}

func TestAddRollsBackFirstFamily(t *testing.T) {
	m, f := newFakeMapper(t)
	f.Fail[ipv6], f.FailN[ipv6] = errors.New("boom"), 2
	err := m.Add(keyA, mappings(t, "tcp *:8080 10.22.0.5/24:80", "tcp *:8080 [fd00::5/64]:80"), defaults)
	if err == nil || !strings.Contains(err.Error(), "ip6tables: boom") {
		t.Fatalf("Add = %v, want the IPv6 failure", err)
	}
	if f.Tables[ipv4].Chains[chA] {
		t.Errorf("IPv4 chain left after the failed Add:\n%s", f.Dump(ipv4))
	}
}

func TestWithoutIP6Tables(t *testing.T) {
	m, f := newFakeMapper(t)
	f.Missing[ipv6] = true
	ms := mappings(t, "tcp *:8080 10.22.0.5/24:80")
	for _, err := range []error{m.Add(keyA, ms, defaults), m.Check(keyA, ms, defaults), m.Remove(keyA, nil), m.GC("mynet", nil)} {
		if err != nil {
			t.Error(err)
		}
	}
	if err := m.Add(keyA, mappings(t, "tcp *:8080 [fd00::5/64]:80"), defaults); err == nil {
		t.Error("an IPv6 mapping without ip6tables succeeded")
	}
}

func TestTryAgain(t *testing.T) {
	m, f := newFakeMapper(t)
	m.cfg.Wait = 50 * time.Millisecond
	ms := mappings(t, "tcp *:8080 10.22.0.5/24:80")

	// The xtables lock, held by another program.
	f.Locked[ipv4] = true
	if err := m.Add(keyA, ms, defaults); conf.Code(err) != conf.CodeTryAgainLater || !strings.Contains(err.Error(), xtables.LockFile) {
		t.Errorf("Add with the xtables lock held = %v (code %d), want code %d naming %s", err, conf.Code(err), conf.CodeTryAgainLater, xtables.LockFile)
	}
	f.Locked[ipv4] = false
	if n := len(f.Restores[ipv4]); n != 1 {
		t.Errorf("restore ran %d times, want once (a lock timeout is not retried)", n)
	}

	// netloom's own lock, held by another open file as another process would.
	l, err := os.OpenFile(m.cfg.LockFile, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := unix.Flock(int(l.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, err := range []error{m.Add(keyA, ms, defaults), m.Remove(keyA, nil), m.GC("mynet", nil)} {
		if conf.Code(err) != conf.CodeTryAgainLater {
			t.Errorf("with the lock held: %v (code %d), want code %d", err, conf.Code(err), conf.CodeTryAgainLater)
		}
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("gave up after %v, want each to wait %v", d, m.cfg.Wait)
	}
}

func TestRetriesOnceAfterForeignChange(t *testing.T) {
	m, f := newFakeMapper(t)
	f.Fail[ipv4], f.FailN[ipv4] = errors.New("iptables-restore: line 3 failed"), 1
	ms := mappings(t, "tcp *:8080 10.22.0.5/24:80")
	if err := m.Add(keyA, ms, defaults); err != nil {
		t.Fatalf("Add after one failed restore: %v", err)
	}
	if err := m.Check(keyA, ms, defaults); err != nil {
		t.Error(err)
	}
}

func TestInvalidInput(t *testing.T) {
	m, _ := newFakeMapper(t)
	ok := mapping(t, "tcp *:8080 10.22.0.5/24:80")
	bad := func(f func(*portmap.Mapping)) []portmap.Mapping {
		x := ok
		f(&x)
		return []portmap.Mapping{x}
	}
	for _, tc := range []struct {
		name string
		k    firewall.Key
		ms   []portmap.Mapping
		o    portmap.Options
	}{
		{"protocol", keyA, bad(func(m *portmap.Mapping) { m.Protocol = "icmp" }), defaults},
		{"port 0", keyA, bad(func(m *portmap.Mapping) { m.HostPort = 0 }), defaults},
		{"no pod address", keyA, bad(func(m *portmap.Mapping) { m.PodIP = netip.Addr{} }), defaults},
		{"families differ", keyA, bad(func(m *portmap.Mapping) { m.HostIP = netip.MustParseAddr("2001:db8::1") }), defaults},
		{"same host key twice", keyA, append(mappings(t, "tcp *:8080 10.22.0.5/24:80"), mapping(t, "tcp *:8080 10.22.0.5/24:81")), defaults},
		{"mark bit", keyA, []portmap.Mapping{ok}, portmap.Options{SNAT: true, MarkMasqBit: 32}},
		{"set-mark chain", keyA, []portmap.Mapping{ok}, portmap.Options{SNAT: true, ExternalSetMarkChain: "A B"}},
		{"condition with newline", keyA, []portmap.Mapping{ok}, portmap.Options{ConditionsV4: []string{"-d", "1.2.3.4\n-A OUTPUT -j DROP"}}},
		{"network with newline", firewall.Key{Network: "a\nb", ContainerID: "c", IfName: "e"}, []portmap.Mapping{ok}, defaults},
		{"empty ifname", firewall.Key{Network: "a", ContainerID: "c"}, []portmap.Mapping{ok}, defaults},
	} {
		if err := m.Add(tc.k, tc.ms, tc.o); err == nil {
			t.Errorf("%s: Add accepted", tc.name)
		}
	}
	// An exact duplicate and 0.0.0.0 are fine: the duplicate goes, 0.0.0.0 means all addresses.
	all := ok
	all.HostIP = netip.IPv4Unspecified()
	if err := m.Add(keyA, []portmap.Mapping{ok, ok, all}, defaults); err != nil {
		t.Errorf("duplicates: %v", err)
	}
}
