// Package fwtest gives the firewall packages' root tests private network namespaces, so that no test
// reads or writes the host's ruleset, and a routed topology to send real traffic through. It stands in
// for test/harness until that exists; its names follow the harness contract so the switch is mechanical.
package fwtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// RequireRoot skips t unless it runs as root; with NETLOOM_REQUIRE_ROOT=1 it fails instead, so CI cannot
// silently skip.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NETLOOM_REQUIRE_ROOT") == "1" {
		t.Fatal("test needs root (NETLOOM_REQUIRE_ROOT=1)")
	}
	t.Skip("test needs root")
}

// Unique returns prefix with a random suffix, at most 15 bytes (an interface name's limit).
func Unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	s := prefix + hex.EncodeToString(b)
	if len(s) > 15 {
		s = s[len(s)-15:]
	}
	return s
}

// NetNS is a named network namespace (ip netns style) that the test created.
type NetNS struct {
	Name, Path string
}

// NewNetNS creates a namespace with loopback up; t.Cleanup deletes it.
func NewNetNS(t testing.TB, prefix string) NetNS {
	t.Helper()
	n := NetNS{Name: Unique(prefix)}
	n.Path = "/run/netns/" + n.Name
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
		}
	})
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Do runs f on a thread switched into n.
func (n NetNS) Do(f func() error) error {
	return ns.WithNetNSPath(n.Path, func(ns.NetNS) error { return f() })
}

// Run runs a command inside n and returns its output; a failure fails t.
func (n NetNS) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Try(args...)
	if err != nil {
		t.Fatalf("ip netns exec %s %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a command inside n and returns its combined output.
func (n NetNS) Try(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...).CombinedOutput()
	return string(out), err
}

// Link connects a and b with a veth pair named after them, addresses each end (CIDR strings, IPv6 ones
// without duplicate address detection) and brings both up.
func Link(t testing.TB, a NetNS, aAddrs []string, b NetNS, bAddrs []string) {
	t.Helper()
	ifA, ifB := Unique("va"), Unique("vb")
	if out, err := exec.Command("ip", "link", "add", ifA, "netns", a.Name, "type", "veth",
		"peer", "name", ifB, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("create veth: %v: %s", err, out)
	}
	for _, side := range []struct {
		n     NetNS
		ifc   string
		addrs []string
	}{{a, ifA, aAddrs}, {b, ifB, bAddrs}} {
		for _, addr := range side.addrs {
			args := []string{"ip", "addr", "add", addr, "dev", side.ifc}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			side.n.Run(t, args...)
		}
		side.n.Run(t, "ip", "link", "set", side.ifc, "up")
	}
}
