package harness

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/run/netns"

// netnsPrefix marks every namespace the harness makes, so `ip netns list` shows what a test left
// (it never should) and a person can tell them from the node's own.
const netnsPrefix = "nltest-"

// NetNS is a named network namespace created for one test, as `ip netns add` makes it: a person
// debugging a test can enter it with `ip netns exec NAME ...`.
type NetNS struct {
	Name string // as `ip netns` knows it
	Path string // /run/netns/<Name>, what CNI_NETNS carries
}

// NewNetNS creates a network namespace named after prefix with a random suffix and removes it in
// t.Cleanup.
func NewNetNS(t testing.TB, prefix string) NetNS {
	t.Helper()
	n := NetNS{Name: netnsPrefix + Unique(prefix)}
	n.Path = filepath.Join(netnsDir, n.Name)
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() { n.Delete(t) })
	return n
}

// Delete removes the namespace now (a test of "DEL after the netns is gone"); removing it again, as
// the cleanup does, is a no-op.
func (n NetNS) Delete(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(n.Path); errors.Is(err, os.ErrNotExist) {
		return
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
	}
}

// Do runs f with the calling goroutine's thread inside the namespace (a netlink call in f acts there)
// and switches back afterwards.
func (n NetNS) Do(f func() error) error {
	return ns.WithNetNSPath(n.Path, func(ns.NetNS) error { return f() })
}

// Exec runs a command inside the namespace and returns its combined output.
func (n NetNS) Exec(cmd ...string) (string, error) {
	args := append([]string{"netns", "exec", n.Name}, cmd...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s: %w: %s", n.Name, strings.Join(cmd, " "), err, out)
	}
	return string(out), nil
}

// Run runs a command inside the namespace, fails the test if it fails, and returns its output.
func (n NetNS) Run(t testing.TB, cmd ...string) string {
	t.Helper()
	out, err := n.Exec(cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Ping sends one echo request from inside from to addr (IPv4 or IPv6) and waits up to two seconds for
// the reply.
func Ping(t testing.TB, from NetNS, addr string) error {
	t.Helper()
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("ping: %q is not an IP address: %w", addr, err)
	}
	cmd := []string{"ping", "-c1", "-W2"}
	if a.Unmap().Is6() {
		cmd = append(cmd, "-6")
	}
	_, err = from.Exec(append(cmd, a.String())...)
	return err
}

// RemoveLinkOnCleanup deletes the host link called name (e.g. a bridge a plugin will create) when t
// ends, if it exists then.
func RemoveLinkOnCleanup(t testing.TB, name string) {
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
}

// BridgePorts lists the links enslaved to the bridge called name in the host namespace; none when the
// bridge does not exist. The dump goes through netlinksafe: other tests change links all the time, and
// the kernel interrupts a dump then.
func BridgePorts(t testing.TB, name string) []string {
	t.Helper()
	br, err := netlinksafe.LinkByName(name)
	if err != nil {
		return nil
	}
	links, err := netlinksafe.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// Leases lists the lease files (one per leased address) host-local keeps for network under dataDir.
func Leases(t testing.TB, dataDir, network string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dataDir, network))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}
