// Package iptables forwards host ports to pods with iptables and ip6tables, in the layout of the reference
// portmap plugin, so that a node can move between the two and either side's DEL removes the other's
// rules. All of it is in the nat table:
//
//	PREROUTING, OUTPUT: -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//	CNI-HOSTPORT-DNAT:  -p tcp -m comment --comment C -m multiport --dports 8080,8081 [conditions] -j CNI-DN-<hash>
//	CNI-DN-<hash>:      -s <pod subnet> -p tcp -m tcp --dport 8080 -m comment --comment C -j CNI-HOSTPORT-SETMARK
//	                    -s 127.0.0.0/8 -p tcp -m tcp --dport 8080 -m comment --comment C -j CNI-HOSTPORT-SETMARK
//	                    -p tcp -m tcp --dport 8080 -m comment --comment C -j DNAT --to-destination 10.22.0.5:80
//	CNI-HOSTPORT-SETMARK: -j MARK --set-xmark <markMasqBit>   (or the config's externalSetMarkChain)
//	POSTROUTING (first): -j CNI-HOSTPORT-MASQ
//	CNI-HOSTPORT-MASQ:  -m mark --mark <bit>/<bit> -j MASQUERADE
//
// CNI-DN-<hash> is the reference's chain for (network, container ID); the comment C is the reference's
// `dnat name: "<network>" id: "<container ID>"` with ` if: "<ifname>"` (Go-quoted) appended, so GC can
// tell two interfaces of one container apart. The hairpin mark matches the pod's whole subnet, so a
// neighbour pod on the same bridge gets its replies back through the host (the reference's iptables
// backend does the same by passing the pod address with its prefix length; its nftables backend matches
// the pod address only). Unlike the reference, the localhost mark takes all of 127.0.0.0/8 (the
// reference 127.0.0.1), and ::1 for IPv6 (the reference none), and jumps for mappings of one host
// address go first in CNI-HOSTPORT-DNAT, so they win over another attachment's all-addresses mapping of
// the same port. With masqAll (and snat, as in the reference) the mark rule matches every source.
//
// Each Add, Remove or GC reads the table with one `iptables-save -t nat` and writes with one
// `iptables-restore --noflush` per IP family (pkg/xtables), which the kernel applies atomically. The
// read, the conflict check and the write run under a flock of netloom's own, so parallel plugin runs see
// each other's mappings. The xtables lock that other programs take is waited for at most Config.Wait, as
// the masquerade backend does, then the operation fails with CNI code 11 (try again later) naming it.
//
// Fault point (a test hook, see pkg/fault): "portmap-iptables-ipv6" is passed just before an operation
// (Add, Remove, GC) commits its IPv6 change, after its IPv4 one; an operation with nothing to change in
// IPv6 does not pass it. NETLOOM_FAULT_POINT=portmap:portmap-iptables-ipv6 kills the portmap plugin there,
// with the IPv4 rules changed and the IPv6 ones not.
package iptables

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/filelock"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
	"github.com/netloom/netloom/pkg/xtables"
)

// DefaultLockFile is netloom's own lock, unless Config says otherwise.
const DefaultLockFile = "/run/netloom/portmap-iptables.lock"

// FaultIPv6 is the fault point between the IPv4 and the IPv6 change of one operation.
const FaultIPv6 = "portmap-iptables-ipv6"

// Config tunes a Mapper; the zero value is New's.
type Config struct {
	// Config picks the iptables build and bounds the wait for the xtables lock; the same bound
	// applies to netloom's own lock.
	xtables.Config
	// LockFile is netloom's own lock. Zero: DefaultLockFile.
	LockFile string
}

// Mapper is the iptables portmap.Mapper. It keeps no state between calls; its methods act in the network
// namespace of the calling thread (the iptables commands inherit it).
type Mapper struct {
	cfg Config
	run xtables.Runner
}

var _ portmap.Mapper = (*Mapper)(nil)

// New returns a Mapper running the system's iptables tools.
func New() *Mapper { return NewWithConfig(Config{}) }

// NewWithConfig returns a Mapper set up by c.
func NewWithConfig(c Config) *Mapper { return newWithTools(c, xtables.NewExec(c.Config)) }

// newWithTools is NewWithConfig with the table reads and writes going to t (tests).
func newWithTools(c Config, t xtables.Tools) *Mapper {
	if c.Wait <= 0 {
		c.Wait = xtables.DefaultWait
	}
	if c.LockFile == "" {
		c.LockFile = DefaultLockFile
	}
	return &Mapper{cfg: c, run: xtables.Runner{Tools: t, Table: natTable, IPv6Point: FaultIPv6}}
}

// Available tells whether the iptables backend can work here: iptables-restore exists and
// iptables-save can read the nat table, the test the reference makes (listing nat OUTPUT).
func Available() bool {
	_, err := xtables.NewExec(xtables.Config{}).Probe(xtables.IPv4, natTable)
	return err == nil
}

// read saves and parses f's nat table.
func (m *Mapper) read(f xtables.Family) (table, error) {
	t, err := m.run.Read(f)
	return newTable(t), err
}

// lock takes netloom's own lock, waiting at most Wait; the returned func releases it.
func (m *Mapper) lock() (func(), error) {
	unlock, err := filelock.Create(m.cfg.LockFile, m.cfg.Wait)
	if errors.Is(err, filelock.ErrTimeout) {
		return nil, conf.TryAgain("another netloom portmap has held %s for over %v; try again", m.cfg.LockFile, m.cfg.Wait)
	}
	return unlock, err
}

// apply commits plan(t) for f; t is f's table, read just before. What t's comments say holds for a
// table read again, so that is kept.
func (m *Mapper) apply(f xtables.Family, t table, plan func(table) (batch, error)) error {
	return m.run.Apply(f, t.Table, func(xt xtables.Table) (xtables.Batch, error) {
		b, err := plan(table{Table: xt, comments: t.comments})
		return b.Batch, err
	})
}

// normalize validates ms and splits them by family: an unspecified host address becomes the zero
// Addr (all addresses), a missing pod subnet the pod address alone, exact duplicates go.
func normalize(ms []portmap.Mapping) ([2][]portmap.Mapping, error) {
	var out [2][]portmap.Mapping
	type famKey struct {
		v6  bool
		key portmap.HostKey
	}
	seen := map[famKey]portmap.Mapping{}
	for i, m := range ms {
		field := fmt.Sprintf("portMappings[%d]", i)
		switch m.Protocol {
		case portmap.TCP, portmap.UDP, portmap.SCTP:
		default:
			return out, conf.Invalid(field+".protocol", "%q is not tcp, udp or sctp", m.Protocol)
		}
		if m.HostPort == 0 || m.PodPort == 0 {
			return out, conf.Invalid(field, "%v: port 0 cannot be forwarded", m)
		}
		if !m.PodIP.IsValid() {
			return out, conf.Invalid(field, "%v: no pod address", m)
		}
		if m.PodIP.Zone() != "" || m.HostIP.Zone() != "" {
			return out, conf.Invalid(field, "%v: an address with a zone cannot be forwarded", m)
		}
		m.PodIP = m.PodIP.Unmap()
		if m.HostIP.IsValid() {
			m.HostIP = m.HostIP.Unmap()
			if m.HostIP.IsUnspecified() {
				m.HostIP = netip.Addr{}
			} else if m.HostIP.Is4() != m.PodIP.Is4() {
				return out, conf.Invalid(field+".hostIP", "%v: host and pod addresses are of different IP families", m)
			}
		}
		if !m.PodSubnet.IsValid() || m.PodSubnet.Addr().Unmap().Is4() != m.PodIP.Is4() {
			m.PodSubnet = netip.PrefixFrom(m.PodIP, m.PodIP.BitLen())
		}
		m.PodSubnet = m.PodSubnet.Masked()
		fk := famKey{m.PodIP.Is6(), m.Key()}
		if prev, dup := seen[fk]; dup {
			if prev == m {
				continue
			}
			return out, conf.Invalid(field, "%v and %v forward the same host port", prev, m)
		}
		seen[fk] = m
		f := xtables.IPv4
		if m.PodIP.Is6() {
			f = xtables.IPv6
		}
		out[f] = append(out[f], m)
	}
	return out, nil
}

// checkOptions refuses options that cannot be put into an iptables-restore line.
func checkOptions(o portmap.Options) error {
	if o.MarkMasqBit < 0 || o.MarkMasqBit > 31 {
		return conf.Invalid("markMasqBit", "%d is not a bit of the 32-bit packet mark; use 0..31", o.MarkMasqBit)
	}
	if c := o.ExternalSetMarkChain; c != "" && !xtables.SafeWord(c) {
		return conf.Invalid("externalSetMarkChain", "%q is not an iptables chain name", c)
	}
	for _, c := range []struct {
		field string
		list  []string
	}{{"conditionsV4", o.ConditionsV4}, {"conditionsV6", o.ConditionsV6}} {
		for i, w := range c.list {
			if hasControl(w) {
				return conf.Invalid(fmt.Sprintf("%s[%d]", c.field, i), "%q holds a control character, which iptables-restore cannot take", w)
			}
		}
	}
	return nil
}

// checkKey refuses a key that cannot be written into an iptables-restore line (it is line based).
func checkKey(k firewall.Key) error {
	if err := k.Check(); err != nil {
		return err
	}
	if hasControl(k.Network) || hasControl(k.ContainerID) || hasControl(k.IfName) {
		return fmt.Errorf("firewall key %q: holds a control character, which iptables-restore cannot take", k.String())
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// validate refuses what cannot be written into an iptables-restore line and returns ms normalized, by
// family.
func validate(k firewall.Key, ms []portmap.Mapping, o portmap.Options) ([2][]portmap.Mapping, error) {
	if err := checkKey(k); err != nil {
		return [2][]portmap.Mapping{}, err
	}
	if err := checkOptions(o); err != nil {
		return [2][]portmap.Mapping{}, err
	}
	return normalize(ms)
}

// Add installs k's mappings in both families, replacing k's earlier ones, in one restore per family.
// Another attachment's mapping of one of the host keys fails it with *portmap.ConflictError before
// anything changes. When the second family fails after the first was written, k's rules of the first
// are removed again, so a failed Add leaves none of k's mappings.
func (m *Mapper) Add(k firewall.Key, ms []portmap.Mapping, o portmap.Options) error {
	byFamily, err := validate(k, ms, o)
	if err != nil {
		return err
	}
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()

	tables, err := m.readForAdd(k, byFamily)
	if err != nil {
		return err
	}
	var done []xtables.Family
	for _, f := range xtables.Families() {
		if tables[f] == nil {
			continue
		}
		want := desired(k, byFamily[f], o, f == xtables.IPv6)
		err := m.apply(f, *tables[f], func(t table) (batch, error) {
			if c := t.conflict(k, byFamily[f]); c != nil {
				return batch{}, c
			}
			return planAdd(t, k, want, o), nil
		})
		if err != nil {
			m.removeFrom(done, k)
			var c *portmap.ConflictError
			if errors.As(err, &c) {
				return c
			}
			return fmt.Errorf("%v: %w", f, err)
		}
		done = append(done, f)
	}
	return nil
}

// readForAdd reads the tables Add changes and checks them for conflicts with ms, before anything changes.
// A family that cannot be read (no such tool, or no such table in this kernel) and has no mappings is
// nil: there is nothing of k's to replace in it either. The reference skips an unusable family the same
// way.
func (m *Mapper) readForAdd(k firewall.Key, byFamily [2][]portmap.Mapping) ([2]*table, error) {
	var tables [2]*table
	for _, f := range xtables.Families() {
		t, err := m.read(f)
		if err != nil && len(byFamily[f]) == 0 {
			continue
		}
		if err != nil {
			return tables, fmt.Errorf("%v: %w", f, err)
		}
		if c := t.conflict(k, byFamily[f]); c != nil {
			return tables, c
		}
		tables[f] = &t
	}
	return tables, nil
}

// removeFrom removes k's rules from the families fams, as well as it can: it undoes a failed Add.
func (m *Mapper) removeFrom(fams []xtables.Family, k firewall.Key) {
	for _, f := range fams {
		if t, err := m.read(f); err == nil {
			_ = m.apply(f, t, func(t table) (batch, error) { return planRemove(t, k), nil })
		}
	}
}

// Remove deletes k's rules in both families, each family in one restore, and nothing when there are none.
// It finds them by k's chain name, so it needs no hint and ignores it.
func (m *Mapper) Remove(k firewall.Key, _ []portmap.HostKey) error {
	if err := checkKey(k); err != nil {
		return err
	}
	return m.applyBoth(func(t table) batch { return planRemove(t, k) })
}

// applyBoth runs plan on each family's table under the lock, one restore per family; a family whose
// tools are missing is skipped.
func (m *Mapper) applyBoth(plan func(t table) batch) error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	for _, f := range xtables.Families() {
		t, err := m.read(f)
		if errors.Is(err, exec.ErrNotFound) {
			continue
		}
		if err == nil {
			err = m.apply(f, t, func(t table) (batch, error) { return plan(t), nil })
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%v: %w", f, err))
		}
	}
	return errors.Join(errs...)
}

// Check reports what of k's mappings is missing or different, in both families.
func (m *Mapper) Check(k firewall.Key, ms []portmap.Mapping, o portmap.Options) error {
	byFamily, err := validate(k, ms, o)
	if err != nil {
		return err
	}
	var problems []string
	for _, f := range xtables.Families() {
		t, err := m.read(f)
		if err != nil && len(byFamily[f]) == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("%v: %w", f, err)
		}
		for _, p := range check(t, k, desired(k, byFamily[f], o, f == xtables.IPv6), o) {
			problems = append(problems, fmt.Sprintf("%v: %s", f, p))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// GC removes the rules of network's attachments that valid does not list, in one restore per family.
func (m *Mapper) GC(network string, valid map[conf.Attachment]bool) error {
	return m.applyBoth(func(t table) batch { return planGC(t, network, valid) })
}
