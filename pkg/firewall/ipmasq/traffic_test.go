package ipmasq

import (
	"bufio"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/internal/fwtest"
)

// TestMasqueradeTraffic routes a client namespace through a router namespace to a server namespace and
// asks the server who connected: the client's own address without masquerade, the router's with it.
func TestMasqueradeTraffic(t *testing.T) {
	fwtest.RequireRoot(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			client, router, server := fwtest.NewNetNS(t, "fwtc"), fwtest.NewNetNS(t, "fwtr"), fwtest.NewNetNS(t, "fwts")
			fwtest.Link(t, client, []string{"10.77.1.2/24", "fd77:1::2/64"}, router, []string{"10.77.1.1/24", "fd77:1::1/64"})
			fwtest.Link(t, router, []string{"10.77.2.1/24", "fd77:2::1/64"}, server, []string{"10.77.2.2/24", "fd77:2::2/64"})
			router.Run(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
			client.Run(t, "ip", "route", "add", "default", "via", "10.77.1.1")
			client.Run(t, "ip", "-6", "route", "add", "default", "via", "fd77:1::1")
			// The server can answer the client's own address too, so a missing masquerade shows as the
			// wrong source rather than as a timeout.
			server.Run(t, "ip", "route", "add", "default", "via", "10.77.2.1")
			server.Run(t, "ip", "-6", "route", "add", "default", "via", "fd77:2::1")

			pod := firewall.Key{Network: "trafficnet", ContainerID: "pod1", IfName: "eth0"}
			podAddrs := prefixes("10.77.1.2/24", "fd77:1::2/64")
			m := b.new(t)
			for _, tc := range []struct {
				phase        string
				step         func() error
				want4, want6 string
			}{
				{"before Ensure", nil, "10.77.1.2", "fd77:1::2"},
				{"after Ensure", func() error { return m.Ensure(pod, podAddrs) }, "10.77.2.1", "fd77:2::1"},
				{"after Remove", func() error { return m.Remove(pod) }, "10.77.1.2", "fd77:1::2"},
			} {
				if tc.step != nil {
					do(t, router, tc.step)
				}
				for _, dst := range []struct{ listen, want string }{{"10.77.2.2:0", tc.want4}, {"[fd77:2::2]:0", tc.want6}} {
					if got := seenSource(t, client, server, dst.listen); got != dst.want {
						t.Errorf("%s: server at %s saw %s, want %s", tc.phase, dst.listen, got, dst.want)
					}
				}
			}
		})
	}
}

// seenSource listens on listen inside server, connects from client and returns the source address the
// server saw.
func seenSource(t *testing.T, client, server fwtest.NetNS, listen string) string {
	t.Helper()
	var l net.Listener
	do(t, server, func() (err error) {
		l, err = net.Listen("tcp", listen)
		return err
	})
	defer l.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			seen <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		seen <- ap.Addr().String()
		_, _ = c.Write([]byte("ok\n"))
	}()
	do(t, client, func() error {
		c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	select {
	case s := <-seen:
		return s
	case <-time.After(5 * time.Second):
		return "nothing"
	}
}
