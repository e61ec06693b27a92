package nftables

import (
	"net/netip"
	"os/exec"
	"testing"

	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/test/harness"
)

// link joins a and b by a veth pair, with addresses on each end and a default route from b through a.
func link(t *testing.T, a harness.NetNS, aAddrs []string, b harness.NetNS, bAddrs []string) (aIf string) {
	t.Helper()
	aIf, bIf := harness.Unique("pma"), harness.Unique("pmb")
	if out, err := exec.Command("ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	for _, s := range []struct {
		n     harness.NetNS
		ifc   string
		addrs []string
	}{{a, aIf, aAddrs}, {b, bIf, bAddrs}} {
		for _, addr := range s.addrs {
			s.n.Run(t, "ip", "addr", "add", addr, "dev", s.ifc, "nodad")
		}
		s.n.Run(t, "ip", "link", "set", s.ifc, "up")
	}
	for _, gw := range aAddrs {
		p := netip.MustParsePrefix(gw)
		fam := "-4"
		if p.Addr().Is6() {
			fam = "-6"
		}
		b.Run(t, "ip", fam, "route", "add", "default", "via", p.Addr().String())
	}
	return aIf
}

// TestTraffic sends real TCP and UDP through the mappings: node is the host the table is in, pod
// runs the servers, client is another machine on a link to node.
func TestTraffic(t *testing.T) {
	node := newNS(t)
	pod := harness.NewNetNS(t, "pmpod")
	client := harness.NewNetNS(t, "pmcli")
	node.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	// No duplicate address detection on the links' link-local addresses either: while it runs, neighbour
	// discovery stalls and the first IPv6 connection times out.
	for _, n := range []harness.NetNS{node, pod, client} {
		n.Run(t, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	}
	link(t, node, []string{"10.88.0.1/16", "fd88::1/64"}, pod, []string{"10.88.0.5/16", "fd88::5/64"})
	link(t, node, []string{"192.0.2.1/24", "2001:db8::1/64"}, client, []string{"192.0.2.2/24", "2001:db8::2/64"})
	harness.Serve(t, &pod, "tcp", 80, "pod-tcp")
	harness.Serve(t, &pod, "udp", 53, "pod-udp")

	ms := []portmap.Mapping{
		mapping("tcp", "", 8080, "10.88.0.5/16", 80),
		mapping("udp", "192.0.2.1", 5353, "10.88.0.5/16", 53),
		mapping("tcp", "", 8080, "fd88::5/64", 80),
	}
	m := New()
	do(t, node, func() error { return m.Add(keyA, ms, snat) })
	// What the plugin does after Add, for 127.0.0.1.
	do(t, node, func() error { return portmap.EnableLocalnet(netip.MustParseAddr("10.88.0.5")) })

	for _, tc := range []struct {
		name  string
		from  *harness.NetNS
		proto string
		to    string
		port  uint16
		want  string
	}{
		{"another machine, IPv4", &client, "tcp", "192.0.2.1", 8080, "pod-tcp"},
		{"another machine, IPv6", &client, "tcp", "2001:db8::1", 8080, "pod-tcp"},
		{"another machine, UDP on one address", &client, "udp", "192.0.2.1", 5353, "pod-udp"},
		{"the node itself", &node, "tcp", "192.0.2.1", 8080, "pod-tcp"},
		{"the node itself, IPv6", &node, "tcp", "2001:db8::1", 8080, "pod-tcp"},
		{"the node's loopback", &node, "tcp", "127.0.0.1", 8080, "pod-tcp"},
		{"the pod itself (hairpin)", &pod, "tcp", "192.0.2.1", 8080, "pod-tcp"},
		{"the pod itself (hairpin), IPv6", &pod, "tcp", "2001:db8::1", 8080, "pod-tcp"},
	} {
		got, err := dial3(tc.from, tc.proto, tc.to, tc.port)
		if err != nil || got != tc.want {
			t.Errorf("%s: %s %s:%d answered %q, %v; want %q", tc.name, tc.proto, tc.to, tc.port, got, err, tc.want)
		}
	}

	do(t, node, func() error { return m.Remove(keyA, hostKeys(ms)) })
	if got, err := harness.Dial(&client, "tcp", netip.MustParseAddr("192.0.2.1"), 8080, 0); err == nil {
		t.Errorf("after Remove, tcp 192.0.2.1:8080 still answers %q", got)
	}
}

// dial3 is harness.Dial, tried again up to twice when the connection worked but no answer came: socat
// gives the answer only half a second after it sent its line (its -t), which a loaded machine misses.
func dial3(from *harness.NetNS, proto, to string, port uint16) (string, error) {
	var got string
	var err error
	for range 3 {
		if got, err = harness.Dial(from, proto, netip.MustParseAddr(to), port, 0); err != nil || got != "" {
			break
		}
	}
	return got, err
}
