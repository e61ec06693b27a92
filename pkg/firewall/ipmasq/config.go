package ipmasq

import (
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
)

// Backend validates an "ipMasqBackend" key (nil when absent) and returns the backend to pass to New:
// "" for the default, "iptables" or "nftables". Anything else is a code-7 error naming the key.
func Backend(key *string) (string, error) {
	if key == nil {
		return "", nil
	}
	switch *key {
	case firewall.BackendIPTables, firewall.BackendNFTables:
		return *key, nil
	}
	return "", conf.Invalid("ipMasqBackend", "%q is not a backend; use %q or %q", *key, firewall.BackendIPTables, firewall.BackendNFTables)
}

// ForConfig is New for a plugin's validated backend: an error is a code-7 error naming "ipMasqBackend".
func ForConfig(backend string) (firewall.Masquerader, error) {
	m, err := New(backend)
	if err != nil {
		return nil, conf.Invalid("ipMasqBackend", "%v", err)
	}
	return m, nil
}

// RemoveFor is DEL's masquerade step: remove k's rules from both backends, the error naming "ipMasq".
// hint is the addresses of the DEL's prevResult (nil without one): the iptables backend then removes
// the rules it expects without reading first (see firewall.HintedRemover).
func RemoveFor(backend string, k firewall.Key, hint []netip.Prefix) error {
	m, err := ForConfig(backend)
	if err != nil {
		return err
	}
	if h, ok := m.(firewall.HintedRemover); ok {
		err = h.RemoveHinted(k, hint)
	} else {
		err = m.Remove(k)
	}
	if err != nil {
		return fmt.Errorf("ipMasq: %w", err)
	}
	return nil
}

// DelHint is what RemoveFor takes from a DEL's prevResult: its addresses, or nil when there is none or
// it does not parse (a DEL must clean up without it).
func DelHint(nc *types.NetConf) []netip.Prefix {
	if nc.RawPrevResult == nil {
		return nil
	}
	prev, err := conf.PrevResult(nc)
	if err != nil || prev == nil {
		return nil
	}
	return ResultPrefixes(prev)
}

// ResultPrefixes are a result's addresses with their prefix lengths, what the reference masquerades:
// traffic from each address to anything outside its subnet.
func ResultPrefixes(r *current.Result) []netip.Prefix {
	var out []netip.Prefix
	for _, ipc := range r.IPs {
		if p, ok := addr.FromIPNet(ipc.Address); ok {
			out = append(out, p)
		}
	}
	return out
}

// CheckFor is CHECK's masquerade step: k's rules for addrs in the backend, the error naming "ipMasq".
func CheckFor(backend string, k firewall.Key, addrs []netip.Prefix) error {
	m, err := ForConfig(backend)
	if err != nil {
		return err
	}
	if err := m.Check(k, addrs); err != nil {
		return fmt.Errorf("ipMasq: %w", err)
	}
	return nil
}

// GCFor is GC's masquerade step: remove network's rules of every attachment not in valid.
func GCFor(backend, network string, valid map[conf.Attachment]bool) error {
	m, err := ForConfig(backend)
	if err != nil {
		return err
	}
	if err := m.GC(network, valid); err != nil {
		return fmt.Errorf("ipMasq: %w", err)
	}
	return nil
}
