// Package link creates, adopts, configures and removes network interfaces: bridges, veth pairs and
// bridge ports. Every netlink call on a link that netloom makes lives here; plugins compose these.
package link

import (
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// ErrNotFound is returned (wrapped) when a link does not exist.
var ErrNotFound = errors.New("link not found")

// ErrNotBridge is wrapped when the link named as a bridge exists and is of another kind (a bridge
// name taken by a veth, say): the configuration must name another link.
var ErrNotBridge = errors.New("not a bridge")

// ByName looks a link up in the calling thread's namespace.
func ByName(name string) (netlink.Link, error) {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("look up %q: %w", name, err)
	}
	return l, nil
}

// SetUp brings l up.
func SetUp(l netlink.Link) error {
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %q up: %w", l.Attrs().Name, err)
	}
	return nil
}

// SetDown brings l down.
func SetDown(l netlink.Link) error {
	if err := netlink.LinkSetDown(l); err != nil {
		return fmt.Errorf("set %q down: %w", l.Attrs().Name, err)
	}
	return nil
}

// Remove deletes the link called name; it succeeds when there is none.
func Remove(name string) error {
	l, err := ByName(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(l); err != nil {
		if _, gone := errors.AsType[netlink.LinkNotFoundError](err); gone {
			return nil
		}
		return fmt.Errorf("delete %q: %w", name, err)
	}
	return nil
}

// WaitOperUp waits until the link called name reports operational state up, polling quickly at first:
// a veth whose peer was just brought up normally is up on the first look, so the common case costs one
// lookup and no sleep.
func WaitOperUp(name string, timeout time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		l, err := ByName(name)
		if err != nil {
			return nil, err
		}
		st := l.Attrs().OperState
		if st == netlink.OperUp {
			return l, nil
		}
		if time.Now().After(deadline) {
			return l, fmt.Errorf("%q is still %s after %v", name, st, timeout)
		}
		time.Sleep(delay)
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}
