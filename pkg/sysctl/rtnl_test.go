package sysctl

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/test/harness"
)

func TestParseRtnlKey(t *testing.T) {
	for _, c := range []struct {
		key  string
		want rtnlKey
		ok   bool
	}{
		{"net/ipv4/ip_forward", rtnlKey{family: unix.AF_INET, link: "all", param: "forwarding"}, true},
		{"/net/ipv4/ip_forward/", rtnlKey{family: unix.AF_INET, link: "all", param: "forwarding"}, true},
		{"net/ipv6/conf/all/forwarding", rtnlKey{family: unix.AF_INET6, link: "all", param: "forwarding", index: 0}, true},
		{"net/ipv4/conf/eth0.100/arp_notify", rtnlKey{family: unix.AF_INET, link: "eth0.100", param: "arp_notify", index: 22}, true},
		{"net/ipv6/conf/eth0/accept_dad", rtnlKey{family: unix.AF_INET6, link: "eth0", param: "accept_dad", index: 27}, true},
		{"net/ipv4/conf/all/rp_filter", rtnlKey{}, false},      // netconf does not report all of "all"
		{"net/ipv4/conf/default/arp_notify", rtnlKey{}, false}, // nor "default"
		{"net/ipv4/conf/eth0/arp_filter", rtnlKey{}, false},    // not in the table
		{"net/ipv4/conf//arp_notify", rtnlKey{}, false},
		{"net/core/somaxconn", rtnlKey{}, false},
		{"kernel/ostype", rtnlKey{}, false},
	} {
		got, ok := parseRtnlKey(c.key)
		if ok != c.ok || got != c.want {
			t.Errorf("parseRtnlKey(%q) = %+v, %v; want %+v, %v", c.key, got, ok, c.want, c.ok)
		}
	}
}

// readProc reads key from /proc/sys itself.
func readProc(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile(path(key))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestRootRtnlMatchesProc reads every key of the tables over rtnetlink and from /proc/sys, on a link
// whose settings differ from the defaults, in a namespace of its own; then writes over rtnetlink and
// reads the file.
func TestRootRtnlMatchesProc(t *testing.T) {
	harness.RequireRoot(t)
	n := harness.NewNetNS(t, "sysctl")
	name := harness.Unique("sc")
	n.Run(t, "ip", "link", "add", name, "type", "veth", "peer", "name", name+"p")
	for key, v := range map[string]string{
		IPv4Conf(name, "arp_ignore"): "2", IPv4Conf(name, "rp_filter"): "1", IPv4Conf(name, "proxy_arp"): "1",
		IPv6Conf(name, "accept_dad"): "0", IPv6Conf(name, "keep_addr_on_down"): "-1", IPv6Conf(name, "disable_ipv6"): "1",
		"net/ipv4/ip_forward": "1",
	} {
		n.Run(t, "sysctl", "-qw", strings.ReplaceAll(key, "/", ".")+"="+v)
	}
	err := n.Do(func() error {
		var keys []string
		for p := range ipv4Index {
			keys = append(keys, IPv4Conf(name, p))
		}
		for p := range ipv6Index {
			keys = append(keys, IPv6Conf(name, p))
		}
		keys = append(keys, "net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", IPv4Conf("all", "forwarding"))
		for _, key := range keys {
			k, ok := parseRtnlKey(key)
			if !ok {
				t.Errorf("%s: not an rtnetlink key", key)
				continue
			}
			got, err := getRtnl(k)
			if err != nil {
				t.Errorf("%s over rtnetlink: %v", key, err)
				continue
			}
			if want := readProc(t, key); got != want {
				t.Errorf("%s: rtnetlink says %q, /proc/sys %q", key, got, want)
			}
		}
		// Writes: arp_notify over rtnetlink, route_localnet on over rtnetlink and off through the file
		// (the kernel flushes the route cache only then); both land where the file shows them.
		for _, w := range [][2]string{
			{IPv4Conf(name, "arp_notify"), "1"}, {IPv4Conf(name, "route_localnet"), "1"}, {IPv4Conf(name, "route_localnet"), "0"},
		} {
			if err := Set(w[0], w[1]); err != nil {
				t.Errorf("Set(%s, %s): %v", w[0], w[1], err)
			}
			if got := readProc(t, w[0]); got != w[1] {
				t.Errorf("after Set(%s, %s) the file says %q", w[0], w[1], got)
			}
		}
		if k, _ := parseRtnlKey(IPv4Conf(name, "route_localnet")); setRtnl(k, "0") == nil {
			t.Error("route_localnet=0 went over rtnetlink")
		}
		// A link that does not exist is the file's error, as before.
		if _, err := Get(IPv4Conf("nosuch0", "arp_notify")); err == nil || !os.IsNotExist(unwrapAll(err)) {
			t.Errorf("Get of a missing link's key: %v, want the file's not-exist error", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
