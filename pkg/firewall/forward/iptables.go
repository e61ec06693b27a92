package forward

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/netloom/netloom/pkg/fault"
	"github.com/netloom/netloom/pkg/xtables"
)

// FaultIPv6 is the fault point (pkg/fault) an IPTables change passes between committing its IPv4 part
// and reading the IPv6 table, when it has both. The first change of an ADD that passes it is "open".
const FaultIPv6 = "firewall-iptables-ipv6"

// Backend opens the node's firewall for a pod's addresses: IPTables or Firewalld (or NFTables).
type Backend interface {
	// Open lets addrs' traffic through; idempotent.
	Open(addrs []netip.Addr) error
	// Close removes what Open made for addrs; it succeeds when that is gone already.
	Close(addrs []netip.Addr) error
	// Check says what is missing of what Open makes.
	Check(addrs []netip.Addr) error
}

// Isolator installs and checks the isolation rules of the "same-bridge" and "isolated" ingress policies,
// in the IP families that addrs has.
type Isolator interface {
	Isolate(addrs []netip.Addr, bridge string, policy Policy) error
	CheckIsolation(addrs []netip.Addr, bridge string, policy Policy) error
}

// IPTables applies the layout through iptables and ip6tables (pkg/xtables): per IP family one read of
// the filter table (iptables-save) and one iptables-restore --noflush of what is missing. Its methods use
// the network namespace of the calling thread.
type IPTables struct {
	tools    xtables.Tools
	admin    string        // the admin chain
	lockFile string        // held by changes that add what attachments share (Serialise); empty: none
	wait     time.Duration // for the lock
}

var (
	_ Backend  = (*IPTables)(nil)
	_ Isolator = (*IPTables)(nil)
)

// NewIPTables returns the backend running the iptables tools that c picks, with admin chain admin.
// Its changes that add what attachments share hold DefaultLockFile, waiting for it at most c.Wait
// (xtables.DefaultWait when zero).
func NewIPTables(c xtables.Config, admin string) *IPTables {
	x := NewIPTablesWithTools(xtables.NewExec(c), admin)
	x.lockFile, x.wait = DefaultLockFile, c.Wait
	if x.wait <= 0 {
		x.wait = xtables.DefaultWait
	}
	return x
}

// NewIPTablesWithTools returns the backend reading and writing through tools (xtables.Fake in tests),
// taking no lock.
func NewIPTablesWithTools(tools xtables.Tools, admin string) *IPTables {
	return &IPTables{tools: tools, admin: admin}
}

// Usable says why the IPv4 filter table cannot be read and written here, or returns nil.
func (x *IPTables) Usable() error {
	if e, ok := x.tools.(xtables.Exec); ok {
		if _, err := e.Probe(xtables.IPv4, FilterTable); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
		return nil
	}
	_, err := x.tools.Save(xtables.IPv4, FilterTable)
	return err
}

// Open installs the chains, the jumps and addrs' pod rules in each family that addrs has.
func (x *IPTables) Open(addrs []netip.Addr) error {
	return x.change(addrs, func(own []netip.Addr) planFunc { return Plan{Admin: x.admin, Addrs: own}.Change })
}

// Close deletes addrs' pod rules; it succeeds when they are gone already.
func (x *IPTables) Close(addrs []netip.Addr) error {
	return x.change(addrs, func(own []netip.Addr) planFunc {
		return func(t xtables.Table) (xtables.Batch, bool) { return Close(t, own), false }
	})
}

// Check says what is missing of what Open installs.
func (x *IPTables) Check(addrs []netip.Addr) error {
	return x.verify(addrs, func(own []netip.Addr) Plan { return Plan{Admin: x.admin, Addrs: own} })
}

// Isolate installs the isolation rules for bridge in each family that addrs has.
func (x *IPTables) Isolate(addrs []netip.Addr, bridge string, policy Policy) error {
	return x.change(addrs, func([]netip.Addr) planFunc { return Plan{Bridge: bridge, Policy: policy}.Change })
}

// CheckIsolation says what is missing of what Isolate installs.
func (x *IPTables) CheckIsolation(addrs []netip.Addr, bridge string, policy Policy) error {
	return x.verify(addrs, func([]netip.Addr) Plan { return Plan{Bridge: bridge, Policy: policy} })
}

// verify compares, in each family addrs has, the table with the plan for the family's addresses.
func (x *IPTables) verify(addrs []netip.Addr, plan func([]netip.Addr) Plan) error {
	v4, v6 := splitFamilies(addrs)
	for fam, own := range [][]netip.Addr{v4, v6} {
		fam := xtables.Family(fam)
		if len(own) == 0 {
			continue
		}
		t, err := x.read(fam)
		if err != nil {
			return err
		}
		if err := plan(own).Diff(t); err != nil {
			return fmt.Errorf("%s filter table: %w", fam, err)
		}
	}
	return nil
}

// planFunc plans a change of a family's table as read: the batch, and whether it adds anything that
// attachments share (Plan.Change).
type planFunc func(xtables.Table) (b xtables.Batch, shared bool)

// change commits, in every family addrs has (IPv4 first), the changes that plan(addresses of the
// family) makes of the table as read.
func (x *IPTables) change(addrs []netip.Addr, plan func([]netip.Addr) planFunc) error {
	v4, v6 := splitFamilies(addrs)
	if len(v4) > 0 {
		if err := x.apply(xtables.IPv4, plan(v4)); err != nil {
			return err
		}
		if len(v6) > 0 {
			fault.Point(FaultIPv6)
		}
	}
	if len(v6) > 0 {
		return x.apply(xtables.IPv6, plan(v6))
	}
	return nil
}

// read saves and parses fam's filter table.
func (x *IPTables) read(fam xtables.Family) (xtables.Table, error) {
	text, err := x.tools.Save(fam, FilterTable)
	if err != nil {
		return xtables.Table{}, err
	}
	return xtables.Parse(text, FilterTable, keep)
}

// apply reads fam's table and commits plan(table) in one restore. A change that adds what attachments
// share does it holding the lock (when the backend has one), from a fresh read.
func (x *IPTables) apply(fam xtables.Family, plan planFunc) error {
	t, err := x.read(fam)
	if err != nil {
		return err
	}
	if _, shared := plan(t); shared && x.lockFile != "" {
		return Serialise(x.lockFile, x.wait, func() error {
			t, err := x.read(fam)
			if err != nil {
				return err
			}
			return x.commit(fam, t, plan)
		})
	}
	return x.commit(fam, t, plan)
}

// commit commits plan(t) in one restore, t being fam's table as read. A restore that fails other than by
// a lock timeout is planned again from a fresh read and tried once more: the reference plugin,
// kube-proxy, an administrator or a concurrent ADD may have changed the table between the read and the
// write.
func (x *IPTables) commit(fam xtables.Family, t xtables.Table, plan planFunc) error {
	for attempt := 0; ; attempt++ {
		b, _ := plan(t)
		if b.Empty() {
			return nil
		}
		err := x.tools.Restore(fam, b.Script(FilterTable))
		if err == nil || xtables.IsLockTimeout(err) || attempt == 1 {
			return err
		}
		var rerr error
		if t, rerr = x.read(fam); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
}

// splitFamilies returns addrs' IPv4 and IPv6 addresses, each once, in order.
func splitFamilies(addrs []netip.Addr) (v4, v6 []netip.Addr) {
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || seen[a] {
			continue
		}
		seen[a] = true
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return v4, v6
}
