package link

import (
	"errors"
	"net"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/test/harness"
)

// moveEnv is a "host" namespace holding dev0 (one end of a veth pair, up) and a pod namespace.
type moveEnv struct {
	host, pod harness.NetNS
	podNS     ns.NetNS
}

func newMoveEnv(t *testing.T) moveEnv {
	t.Helper()
	harness.RequireRoot(t)
	e := moveEnv{host: harness.NewNetNS(t, "mvhost"), pod: harness.NewNetNS(t, "mvpod")}
	e.host.Run(t, "ip", "link", "add", "dev0", "type", "veth", "peer", "name", "dev1")
	e.host.Run(t, "ip", "link", "set", "dev0", "up")
	var err error
	if e.podNS, err = ns.GetNS(e.pod.Path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.podNS.Close() })
	return e
}

// in returns the link called name in n, or nil.
func in(t *testing.T, n harness.NetNS, name string) netlink.Link {
	t.Helper()
	var l netlink.Link
	_ = n.Do(func() error { l, _ = netlink.LinkByName(name); return nil })
	return l
}

func TestMoveIntoAndOut(t *testing.T) {
	e := newMoveEnv(t)
	err := e.host.Do(func() error {
		l, err := ByName("dev0")
		if err != nil {
			return err
		}
		_, err = MoveInto(l, e.podNS, "eth0")
		return err
	})
	if err != nil {
		t.Fatalf("MoveInto: %v", err)
	}
	l := in(t, e.pod, "eth0")
	if l == nil || l.Attrs().Alias != "dev0" || l.Attrs().Flags&net.FlagUp == 0 || in(t, e.host, "dev0") != nil {
		t.Fatalf("after MoveInto: pod's eth0 %+v", l)
	}
	var orig string
	if err := e.host.Do(func() (err error) { orig, err = MoveOut(e.podNS, "eth0"); return err }); err != nil || orig != "dev0" {
		t.Fatalf("MoveOut: %q %v", orig, err)
	}
	back := in(t, e.host, "dev0")
	if back == nil || back.Attrs().Alias != "" || back.Attrs().Flags&net.FlagUp != 0 || in(t, e.pod, "eth0") != nil {
		t.Fatalf("after MoveOut: host's dev0 %+v", back)
	}
	err = e.host.Do(func() error { _, err := MoveOut(e.podNS, "eth0"); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("MoveOut of a link that is not there: %v, want ErrNotFound", err)
	}
}

// A failed MoveInto leaves the device on the host under its name, up as it was.
func TestMoveIntoRollsBack(t *testing.T) {
	e := newMoveEnv(t)
	e.pod.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	err := e.host.Do(func() error {
		l, err := ByName("dev0")
		if err != nil {
			return err
		}
		_, err = MoveInto(l, e.podNS, "eth0")
		return err
	})
	if err == nil {
		t.Fatal("MoveInto onto a taken name succeeded")
	}
	l := in(t, e.host, "dev0")
	if l == nil || l.Attrs().Alias != "" || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("after the failed MoveInto: host's dev0 %+v", l)
	}
}

// MoveOut leaves a link without the alias, and a link whose name the host took again, in the pod.
func TestMoveOutRefuses(t *testing.T) {
	e := newMoveEnv(t)
	e.pod.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	err := e.host.Do(func() error { _, err := MoveOut(e.podNS, "eth0"); return err })
	if !errors.Is(err, ErrNoOriginalName) || in(t, e.pod, "eth0") == nil {
		t.Errorf("MoveOut without alias: %v", err)
	}
	e.pod.Run(t, "ip", "link", "set", "eth0", "alias", "dev0")
	err = e.host.Do(func() error { _, err := MoveOut(e.podNS, "eth0"); return err })
	if l := in(t, e.pod, "eth0"); err == nil || l == nil || l.Attrs().Alias != "dev0" {
		t.Errorf("MoveOut onto the host's dev0: %v; pod's eth0 %+v", err, l)
	}
}
