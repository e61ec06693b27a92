package iptables

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
)

// referenceSave is the nat table as the reference portmap (v1.9.1, iptables) leaves it for container c1
// of network mynet, forwarding tcp/8080 to 10.22.0.5:80.
const referenceSave = `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-f0bca4ac77cde1bf2f3da - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-f0bca4ac77cde1bf2f3da -s 10.22.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-f0bca4ac77cde1bf2f3da -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-f0bca4ac77cde1bf2f3da -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.22.0.5:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"mynet\" id: \"c1\"" -m multiport --dports 8080 -j CNI-DN-f0bca4ac77cde1bf2f3da
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
`

func refMapping(port uint16, to string) portmap.Mapping {
	return portmap.Mapping{Protocol: portmap.TCP, HostPort: port, PodIP: netip.MustParseAddr(to), PodPort: 80,
		PodSubnet: netip.MustParsePrefix("10.22.0.0/24")}
}

func TestCheckReference(t *testing.T) {
	k := firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "eth0"}
	for _, tc := range []struct {
		name      string
		k         firewall.Key
		ms        []portmap.Mapping
		found     bool
		problems  []string // substrings, one per problem
		dropEntry bool
	}{
		{name: "the reference's pod", k: k, ms: []portmap.Mapping{refMapping(8080, "10.22.0.5")}, found: true},
		{name: "another interface of the container", k: firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "net1"},
			ms: []portmap.Mapping{refMapping(8080, "10.22.0.5")}, found: true},
		{name: "another pod address", k: k, ms: []portmap.Mapping{refMapping(8080, "10.22.0.6")}, found: true,
			problems: []string{"no rule forwarding tcp/8080 (all addresses) to 10.22.0.6:80"}},
		{name: "a port it lacks", k: k, ms: []portmap.Mapping{refMapping(8080, "10.22.0.5"), refMapping(8081, "10.22.0.5")}, found: true,
			problems: []string{"no rule forwarding tcp/8081", "no jump to CNI-DN-f0bca4ac77cde1bf2f3da for tcp port 8081"}},
		{name: "entry rule gone", k: k, ms: []portmap.Mapping{refMapping(8080, "10.22.0.5")}, found: true, dropEntry: true,
			problems: []string{"nat chain PREROUTING lacks the jump to CNI-HOSTPORT-DNAT"}},
		{name: "another container", k: firewall.Key{Network: "mynet", ContainerID: "c2", IfName: "eth0"},
			ms: []portmap.Mapping{refMapping(8080, "10.22.0.5")}},
		{name: "another network", k: firewall.Key{Network: "other", ContainerID: "c1", IfName: "eth0"},
			ms: []portmap.Mapping{refMapping(8080, "10.22.0.5")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := referenceSave
			if tc.dropEntry {
				text = strings.Replace(text, "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n", "", 1)
			}
			byFamily, err := normalize(tc.ms)
			if err != nil {
				t.Fatal(err)
			}
			problems, found := checkReference(parseSave(t, text), tc.k, byFamily[ipv4])
			if found != tc.found || len(problems) != len(tc.problems) {
				t.Fatalf("checkReference = %q, %v; want %d problems, found %v", problems, found, len(tc.problems), tc.found)
			}
			for i, p := range tc.problems {
				if !strings.Contains(problems[i], p) {
					t.Errorf("problem %d = %q, want it to say %q", i, problems[i], p)
				}
			}
		})
	}
}

// A netloom Add of the reference pod's host port reports a conflict that names the pod's address and
// how to evict it; Evict removes the reference's chain and jump, and the Add then succeeds.
func TestEvictReferenceOwner(t *testing.T) {
	m, f := newFakeMapper(t)
	load(t, f, ipv4, referenceSave)
	k := firewall.Key{Network: "mynet", ContainerID: "c9", IfName: "eth0"}
	ms := []portmap.Mapping{refMapping(8080, "10.22.0.9")}
	opts := portmap.Options{SNAT: true, MarkMasqBit: portmap.DefaultMarkMasqBit}
	err := m.Add(k, ms, opts)
	var c *portmap.ConflictError
	if !errors.As(err, &c) {
		t.Fatalf("Add over the reference's host port: %v, want a conflict", err)
	}
	if c.Owner != "mynet/c1" || c.PodIP != netip.MustParseAddr("10.22.0.5") {
		t.Errorf("conflict names %q at %v, want mynet/c1 at 10.22.0.5", c.Owner, c.PodIP)
	}
	if got, err := m.Conflict(k, ms); err != nil || got == nil || got.OwnerRef != c.OwnerRef {
		t.Errorf("Conflict = %+v, %v; want the same conflict as Add's", got, err)
	}
	if err := m.Evict(c); err != nil {
		t.Fatal(err)
	}
	if d := f.Dump(ipv4); strings.Contains(d, chA) {
		t.Errorf("reference chain left after Evict:\n%s", d)
	}
	if err := m.Add(k, ms, opts); err != nil {
		t.Errorf("Add after Evict: %v", err)
	}
	if err := m.Evict(&portmap.ConflictError{OwnerRef: "FOO"}); err == nil {
		t.Error("Evict of a reference that is not a DN chain succeeded")
	}
}

func TestEvictRefRoundTrip(t *testing.T) {
	for _, r := range []evictRef{
		{chain: chA},
		{chain: chA, known: true, owner: owner{network: "my net", containerID: "c1"}},
		{chain: chA, known: true, owner: owner{network: "n", containerID: "c1", ifName: "eth0", hasIf: true}},
	} {
		got, ok := parseEvictRef(r.String())
		if !ok || got != r {
			t.Errorf("parseEvictRef(%q) = %+v, %v; want %+v", r.String(), got, ok, r)
		}
	}
}
