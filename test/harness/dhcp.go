package harness

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// dnsmasqBinary is Debian's dnsmasq, the DHCP server the dhcp tests run in a LAN namespace.
const dnsmasqBinary = "dnsmasq"

// DHCPLAN is a LAN segment with a DHCP server: dnsmasq in its own namespace behind one end of a veth
// pair, the other end (Master) in the host namespace with no address, for a macvlan pod to attach to.
// Nothing of it is routed from the host: the DHCP traffic stays between the pods and the LAN namespace.
type DHCPLAN struct {
	NS        NetNS
	Master    string       // NewDHCPLAN: the host end of the wire, macvlan's "master"; ServeDHCP: empty
	Subnet    netip.Prefix // the LAN, /24
	Server    netip.Addr   // dnsmasq's address (.1), also the router it hands out
	DNS       netip.Addr   // the DNS server it hands out (.53; nothing answers there)
	First     netip.Addr   // its range: .100 ...
	Last      netip.Addr   // ... to .150
	LeaseFile string
	Dnsmasq   *Daemon
}

// DHCPLANLease is the lease time dnsmasq grants: its minimum, so a test sees a renewal (at T1, half of
// it) within about a minute.
const DHCPLANLease = 2 * time.Minute

// StaticRouteDst and StaticRouteVia are the classful static route (option 33) the LAN's server hands
// out: TEST-NET-1 through .254 of the LAN.
const StaticRouteDst = "192.0.2.0/24"

// NewDHCPLAN makes the LAN 10.<a>.<b>.0/24: a namespace of its own behind a veth pair whose host end
// (Master) has no address, served by ServeDHCP. It removes it all when t ends.
func NewDHCPLAN(t testing.TB, a, b int) *DHCPLAN {
	t.Helper()
	requireDnsmasq(t)
	lanNS := NewNetNS(t, "dhlan")
	master, peer := Unique("nldm"), Unique("nldp")
	la := netlink.NewLinkAttrs()
	la.Name = master
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}); err != nil {
		t.Fatalf("create veth %s: %v", master, err)
	}
	RemoveLinkOnCleanup(t, master)
	for _, c := range [][]string{
		{"ip", "link", "set", peer, "netns", lanNS.Name},
		{"ip", "link", "set", master, "up"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	lan := ServeDHCP(t, lanNS, peer, netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", a, b)))
	lan.Master = master
	return lan
}

func requireDnsmasq(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(dnsmasqBinary); err != nil {
		t.Fatalf("dnsmasq is not installed: install the Debian package \"dnsmasq\" (make deps-system): %v", err)
	}
}

// ServeDHCP gives iface in ns the subnet's .1 (a /24) and runs dnsmasq on it, serving .100-.150 with
// DHCPLANLease leases, the router .1, the DNS server .53, the domain "dhcp.test" and a static route to
// StaticRouteDst via .254 (dnsmasq sends options 6 and 15 only to a client that asks for them). dnsmasq
// stops when t ends. The result's Master is empty: the LAN is whatever iface is wired to.
func ServeDHCP(t testing.TB, ns NetNS, iface string, subnet netip.Prefix) *DHCPLAN {
	t.Helper()
	requireDnsmasq(t)
	base := strings.TrimSuffix(subnet.Masked().Addr().String(), "0")
	lan := &DHCPLAN{
		NS:     ns,
		Subnet: subnet.Masked(),
		Server: netip.MustParseAddr(base + "1"),
		DNS:    netip.MustParseAddr(base + "53"),
		First:  netip.MustParseAddr(base + "100"),
		Last:   netip.MustParseAddr(base + "150"),
	}
	ns.Run(t, "ip", "addr", "add", lan.Server.String()+"/24", "dev", iface)
	ns.Run(t, "ip", "link", "set", iface, "up")
	ns.Run(t, "ip", "link", "set", "lo", "up")

	d := newDaemon(t, "dnsmasq", ns, false)
	lan.LeaseFile = filepath.Join(d.Dir, "leases")
	pid := filepath.Join(d.Dir, "dnsmasq.pid")
	d.add("dnsmasq", []string{dnsmasqBinary,
		"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
		"--user=root", "--group=root", "--log-facility=-", "--log-dhcp", "--dhcp-authoritative", "--no-ping",
		"--interface=" + iface, "--bind-interfaces",
		"--pid-file=" + pid, "--dhcp-leasefile=" + lan.LeaseFile,
		fmt.Sprintf("--dhcp-range=%s,%s,255.255.255.0,%ds", lan.First, lan.Last, int(DHCPLANLease.Seconds())),
		"--dhcp-option=option:router," + lan.Server.String(),
		"--dhcp-option=option:dns-server," + lan.DNS.String(),
		"--dhcp-option=option:domain-name,dhcp.test",
		"--dhcp-option=option:static-route,192.0.2.0," + base + "254",
	}, func() error {
		_, err := os.Stat(pid)
		return err
	})
	d.start(t)
	lan.Dnsmasq = d
	return lan
}

// DnsmasqLease is one line of dnsmasq's lease file.
type DnsmasqLease struct {
	Expiry   time.Time
	MAC      string
	Addr     netip.Addr
	ClientID string // decoded: the identifier's bytes after its type byte
}

// Leases reads dnsmasq's lease file: the leases it holds now (dnsmasq rewrites the file on every change).
func (lan *DHCPLAN) Leases(t testing.TB) []DnsmasqLease {
	t.Helper()
	f, err := os.Open(lan.LeaseFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []DnsmasqLease
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "<expiry> <mac> <ip> <hostname or *> <client-id as hex bytes joined by ':', or *>"
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		exp, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", lan.LeaseFile, sc.Text(), err)
		}
		addr, err := netip.ParseAddr(fs[2])
		if err != nil {
			t.Fatalf("%s: %q: %v", lan.LeaseFile, sc.Text(), err)
		}
		l := DnsmasqLease{Expiry: time.Unix(exp, 0), MAC: fs[1], Addr: addr}
		if raw, err := hex.DecodeString(strings.ReplaceAll(fs[4], ":", "")); err == nil && len(raw) > 1 {
			l.ClientID = string(raw[1:])
		}
		out = append(out, l)
	}
	return out
}

// Lease returns the server's lease of addr, if it holds one.
func (lan *DHCPLAN) Lease(t testing.TB, addr netip.Addr) (DnsmasqLease, bool) {
	t.Helper()
	for _, l := range lan.Leases(t) {
		if l.Addr == addr {
			return l, true
		}
	}
	return DnsmasqLease{}, false
}

// StartDHCPDaemon runs `<binary> daemon -socketpath <Dir>/dhcp.sock -pidfile <Dir>/dhcp.pid args...`
// (netloom's dhcp from PluginDir, or a reference build's path) inside node, where its namespace does not
// matter: it enters each pod's by path. A "-socketpath" in args wins (the flag package takes the last).
// It returns once the socket exists; DHCPSocket gives its path.
// Stop sends SIGTERM, Kill SIGKILL (which leaves the socket file behind), Restart starts it again.
func StartDHCPDaemon(t testing.TB, node NetNS, binary string, args ...string) *Daemon {
	t.Helper()
	if !strings.Contains(binary, "/") {
		binary = filepath.Join(PluginDir(t), binary)
	}
	d := newDaemon(t, "dhcp", node, false)
	d.sock = filepath.Join(d.Dir, "dhcp.sock")
	for i, a := range args {
		if a == "-socketpath" && i+1 < len(args) {
			d.sock = args[i+1]
		}
	}
	argv := append([]string{binary, "daemon", "-socketpath", filepath.Join(d.Dir, "dhcp.sock"), "-pidfile", filepath.Join(d.Dir, "dhcp.pid")}, args...)
	d.add("dhcp", argv, func() error {
		st, err := os.Stat(d.sock)
		if err != nil {
			return err
		}
		if st.Mode()&os.ModeSocket == 0 {
			return errors.New("not a socket")
		}
		return nil
	})
	d.start(t)
	return d
}

// DHCPSocket is the socket of a daemon StartDHCPDaemon started.
func (d *Daemon) DHCPSocket() string {
	if d.Kind != "dhcp" {
		panic(d.Kind + " is not a dhcp daemon")
	}
	return d.sock
}

// Running reports whether every process of the daemon runs.
func (d *Daemon) Running() bool {
	for _, p := range d.procs {
		if !p.running() {
			return false
		}
	}
	return len(d.procs) > 0
}
