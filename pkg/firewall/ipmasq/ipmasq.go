// Package ipmasq chooses the masquerade backend for the "ipMasq" and "ipMasqBackend" keys of the bridge,
// ptp and the overlays, the way the reference plugins (pkg/ip/ipmasq_linux.go) do.
package ipmasq

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/iptables"
	"github.com/netloom/netloom/pkg/firewall/nftables"
)

// New returns the Masquerader for backend: "iptables", "nftables", or "" for the reference's default,
// which is iptables unless only nftables works on this node.
//
// Its Ensure and Check use that backend. Its Remove and GC clean up in both backends, as the reference's
// teardown does, because the attachment may have been made under another configuration or by another
// plugin version; a backend that does not work on this node is skipped there.
func New(backend string) (firewall.Masquerader, error) {
	// With the nftables backend, iptables most likely holds nothing of the attachment: its cleanup asks
	// for the attachment's chain before it reads more.
	ipt := iptables.New()
	if backend == firewall.BackendNFTables {
		ipt = iptables.NewForCleanup()
	}
	b := &both{cleaners: []cleaner{
		{ipt, func() bool { _, ok := iptables.Probe(); return ok }},
		{nftables.New(), nftables.Available},
	}}
	switch backend {
	case firewall.BackendIPTables:
		b.primary = iptables.New()
	case firewall.BackendNFTables:
		b.primary = nftables.New()
	case "":
		// Chosen on first Ensure or Check: the probe runs iptables, which DEL and GC do not need.
	default:
		return nil, fmt.Errorf("unknown masquerade backend %q; want %q or %q", backend,
			firewall.BackendIPTables, firewall.BackendNFTables)
	}
	return b, nil
}

// defaultBackend is the reference's choice: iptables unless only nftables works.
func defaultBackend() firewall.Masquerader {
	if m, ok := iptables.Probe(); ok {
		return m
	}
	if nftables.Available() {
		return nftables.New()
	}
	return iptables.New() // neither works: fail with iptables' error, as the reference does
}

// cleaner is a backend that Remove and GC sweep, with the test that excuses its failure.
type cleaner struct {
	firewall.Masquerader
	works func() bool
}

type both struct {
	primary  firewall.Masquerader // nil until needed when the backend is the default
	cleaners []cleaner
}

func (b *both) backend() firewall.Masquerader {
	if b.primary == nil {
		b.primary = defaultBackend()
	}
	return b.primary
}

func (b *both) Ensure(k firewall.Key, addrs []netip.Prefix) error {
	return b.backend().Ensure(k, addrs)
}

func (b *both) Check(k firewall.Key, addrs []netip.Prefix) error {
	return b.backend().Check(k, addrs)
}

func (b *both) Remove(k firewall.Key) error {
	return b.sweep(func(m firewall.Masquerader) error { return m.Remove(k) })
}

func (b *both) GC(network string, valid map[conf.Attachment]bool) error {
	return b.sweep(func(m firewall.Masquerader) error { return m.GC(network, valid) })
}

// sweep runs f on every backend. A failure counts only if that backend works here: on a node without
// iptables, say, there is nothing it could have installed.
func (b *both) sweep(f func(firewall.Masquerader) error) error {
	var errs []error
	for _, c := range b.cleaners {
		if err := f(c.Masquerader); err != nil && c.works() {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
