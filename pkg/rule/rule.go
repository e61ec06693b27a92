// Package rule adds, lists and removes policy routing rules ("ip rule"): source-based routing sends
// packets from one address to its own routing table.
package rule

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/addr"
)

// From is a rule "from <Src> lookup <Table>" as the kernel holds it (Priority is the kernel's "pref").
type From struct {
	Src      netip.Prefix
	Table    int
	Priority int
}

func (r From) String() string {
	return fmt.Sprintf("from %s lookup %d (pref %d)", r.Src, r.Table, r.Priority)
}

// AddFrom adds "from <src>/32 (or /128) lookup <table>" without a priority, so the kernel puts it just
// before the last rule added before it, as `ip rule add` does. An identical rule already present is
// fine.
func AddFrom(src netip.Addr, table int) error {
	r := netlink.NewRule()
	r.Src = addr.IPNet(netip.PrefixFrom(src, src.BitLen()))
	r.Table = table
	r.Family = family(src)
	if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add rule from %s lookup %d: %w", src, table, err)
	}
	return nil
}

// ListFrom returns the rules of both families that match on a source prefix.
func ListFrom() ([]From, error) {
	var out []From
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := netlinksafe.RuleList(fam)
		if err != nil {
			return nil, fmt.Errorf("list rules: %w", err)
		}
		for _, r := range rules {
			if r.Src == nil {
				continue
			}
			p, ok := addr.FromIPNet(*r.Src)
			if !ok {
				continue
			}
			out = append(out, From{Src: p, Table: r.Table, Priority: r.Priority})
		}
	}
	return out, nil
}

// Tables returns the tables every rule (of both families) looks up.
func Tables() (map[int]bool, error) {
	used := map[int]bool{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := netlinksafe.RuleList(fam)
		if err != nil {
			return nil, fmt.Errorf("list rules: %w", err)
		}
		for _, r := range rules {
			used[r.Table] = true
		}
	}
	return used, nil
}

// DelFrom removes the rule r; already absent is fine.
func DelFrom(r From) error {
	nr := netlink.NewRule()
	nr.Src = addr.IPNet(r.Src)
	nr.Table = r.Table
	nr.Priority = r.Priority
	nr.Family = family(r.Src.Addr())
	if err := netlink.RuleDel(nr); err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("remove rule %s: %w", r, err)
	}
	return nil
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
