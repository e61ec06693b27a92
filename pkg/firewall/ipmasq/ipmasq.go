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
	"github.com/netloom/netloom/pkg/xtables"
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
	b := &both{
		cleaners: []cleaner{
			{ipt, iptablesWorks},
			{nftables.New(), nftables.Available},
		},
		fallback: fallback{
			iptables:      func() firewall.Masquerader { return iptables.New() },
			iptablesWorks: iptablesWorks,
			nftables:      func() firewall.Masquerader { return nftables.New() },
			nftablesWorks: nftables.Available,
		},
	}
	switch backend {
	case firewall.BackendIPTables:
		b.primary = iptables.New()
	case firewall.BackendNFTables:
		b.primary = nftables.New()
	case "":
		// Chosen by the first Ensure or Check (see fallback); DEL and GC need no choice.
	default:
		return nil, fmt.Errorf("unknown masquerade backend %q; want %q or %q", backend,
			firewall.BackendIPTables, firewall.BackendNFTables)
	}
	return b, nil
}

// iptablesWorks is the reference's test for the default backend: iptables can read the nat table.
func iptablesWorks() bool { _, ok := iptables.Probe(); return ok }

// fallback is how the default backend is chosen: the reference's choice, iptables unless only
// nftables works, made without the reference's probe (an iptables run only to learn that iptables
// works) when iptables does its job.
type fallback struct {
	iptables, nftables           func() firewall.Masquerader
	iptablesWorks, nftablesWorks func() bool
}

// run does op with the default backend and returns the backend it used. op runs with iptables first:
// when it succeeds, iptables works here. Only when it fails does the probe run; if iptables works
// (the failure is op's own, say a rule that iptables refused) that failure is op's answer, as it would
// be after the reference's probe. Otherwise op runs with nftables when nftables works, and fails with
// iptables' error when neither does, as the reference does. A lock timeout (CNI code 11) runs no probe:
// the legacy iptables holding its lock works, and the runtime tries again.
func (fb fallback) run(op func(firewall.Masquerader) error) (firewall.Masquerader, error) {
	ipt := fb.iptables()
	err := op(ipt)
	if err == nil || xtables.IsLockTimeout(err) || fb.iptablesWorks() || !fb.nftablesWorks() {
		return ipt, err
	}
	nft := fb.nftables()
	return nft, op(nft)
}

// cleaner is a backend that Remove and GC sweep, with the test that excuses its failure.
type cleaner struct {
	firewall.Masquerader
	works func() bool
}

type both struct {
	primary  firewall.Masquerader // nil until an Ensure or Check chose it when the backend is the default
	cleaners []cleaner
	fallback fallback
}

// use does op with the configured backend, or the default one (see fallback.run).
func (b *both) use(op func(firewall.Masquerader) error) error {
	if b.primary != nil {
		return op(b.primary)
	}
	m, err := b.fallback.run(op)
	b.primary = m
	return err
}

func (b *both) Ensure(k firewall.Key, addrs []netip.Prefix) error {
	return b.use(func(m firewall.Masquerader) error { return m.Ensure(k, addrs) })
}

func (b *both) Check(k firewall.Key, addrs []netip.Prefix) error {
	return b.use(func(m firewall.Masquerader) error { return m.Check(k, addrs) })
}

func (b *both) Remove(k firewall.Key) error { return b.RemoveHinted(k, nil) }

// RemoveHinted is Remove passing the hint on to the backends that take one (firewall.HintedRemover).
func (b *both) RemoveHinted(k firewall.Key, addrs []netip.Prefix) error {
	return b.sweep(func(m firewall.Masquerader) error {
		if h, ok := m.(firewall.HintedRemover); ok {
			return h.RemoveHinted(k, addrs)
		}
		return m.Remove(k)
	})
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
