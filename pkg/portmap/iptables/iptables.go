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
// `iptables-restore --noflush` per IP family, which the kernel applies atomically. The read, the
// conflict check and the write run under a flock of netloom's own, so parallel plugin runs see each
// other's mappings; the xtables lock that other programs take is waited on (-w), never failed on.
package iptables

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/portmap"
)

// Defaults of Config.
const (
	DefaultWait     = 60 * time.Second
	DefaultLockFile = "/run/netloom/portmap-iptables.lock"
)

// Variant picks which build of the iptables tools runs.
type Variant string

const (
	// VariantSystem runs iptables-save and iptables-restore, whichever build the system selects.
	VariantSystem Variant = ""
	VariantLegacy Variant = "legacy" // iptables-legacy-save, iptables-legacy-restore
	VariantNFT    Variant = "nft"    // iptables-nft-save, iptables-nft-restore
)

// Config tunes a Mapper; the zero value is New's.
type Config struct {
	Variant Variant
	// Wait bounds how long one operation waits for the xtables lock, and as long again for netloom's
	// own lock; past it the operation fails with CNI code 11 (try again later). Zero: DefaultWait.
	Wait time.Duration
	// LockFile is netloom's own lock. Zero: DefaultLockFile.
	LockFile string
}

// family is one of the two tables iptables keeps per hook.
type family int

const (
	ipv4 family = iota
	ipv6
)

func (f family) String() string { return [...]string{"iptables", "ip6tables"}[f] }

// Mapper is the iptables portmap.Mapper. It keeps no state between calls; its methods act in the network
// namespace of the calling thread (the iptables commands inherit it).
type Mapper struct {
	cfg   Config
	tools tools
}

// tools is how the Mapper reads and writes a nat table: iptables-save and iptables-restore, or a fake.
type tools interface {
	// save returns `iptables-save -t nat` output for f.
	save(f family) (string, error)
	// restore runs `iptables-restore --noflush` for f with input; an error wrapping errLockTimeout
	// says it gave up waiting for the xtables lock.
	restore(f family, input string) error
}

var _ portmap.Mapper = (*Mapper)(nil)

// New returns a Mapper running the system's iptables tools.
func New() *Mapper { return NewWithConfig(Config{}) }

// NewWithConfig returns a Mapper set up by c.
func NewWithConfig(c Config) *Mapper {
	if c.Wait <= 0 {
		c.Wait = DefaultWait
	}
	if c.LockFile == "" {
		c.LockFile = DefaultLockFile
	}
	return &Mapper{cfg: c, tools: execTools{c}}
}

// newWithTools is NewWithConfig with the table reads and writes going to t (tests).
func newWithTools(c Config, t tools) *Mapper {
	m := NewWithConfig(c)
	m.tools = t
	return m
}

// Available tells whether the iptables backend can work here: iptables-restore exists and
// iptables-save can read the nat table, the test the reference makes (listing nat OUTPUT).
func Available() bool { return New().available() }

func (m *Mapper) available() bool {
	_, restore := m.cfg.binaries(ipv4)
	if _, err := exec.LookPath(restore); err != nil {
		return false
	}
	_, err := m.tools.save(ipv4)
	return err == nil
}

func (c Config) binaries(f family) (save, restore string) {
	base := f.String()
	if c.Variant != VariantSystem {
		base += "-" + string(c.Variant)
	}
	return base + "-save", base + "-restore"
}

// execTools runs the iptables tools that Config names.
type execTools struct{ cfg Config }

func (x execTools) save(f family) (string, error) {
	bin, _ := x.cfg.binaries(f)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "-t", natTable)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s -t %s: %w: %s", bin, natTable, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// read saves and parses f's nat table.
func (m *Mapper) read(f family) (table, error) {
	text, err := m.tools.save(f)
	if err != nil {
		return table{}, err
	}
	return parseSave(text)
}

// maxInputInError is how much of a failed restore's input its error quotes: enough for the line that
// "Error occurred at line: N" points to in one attachment's batch.
const maxInputInError = 4096

// errLockTimeout marks a restore that gave up waiting for the xtables lock.
var errLockTimeout = errors.New("xtables lock")

// restore runs `iptables-restore --noflush -w <Wait>`: the legacy build waits that long for the xtables
// lock, the nf_tables build needs no lock and accepts the flag.
func (x execTools) restore(f family, input string) error {
	_, bin := x.cfg.binaries(f)
	secs := int(math.Ceil(x.cfg.Wait.Seconds()))
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--noflush", "-w", fmt.Sprint(secs))
	cmd.Stdin = strings.NewReader(input)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		// The legacy build says "Another app is currently holding the xtables lock. Stopped waiting
		// after 60s." and exits with status 4 (RESOURCE_PROBLEM).
		if strings.Contains(msg, "holding the xtables lock") {
			return fmt.Errorf("%s: %w: %s", bin, errLockTimeout, msg)
		}
		if len(input) > maxInputInError {
			input = input[:maxInputInError] + "\n..."
		}
		return fmt.Errorf("%s --noflush: %w: %s\ninput:\n%s", bin, err, msg, input)
	}
	return nil
}

// lock takes netloom's own lock, polling so that it can give up after Wait; the returned func releases it.
func (m *Mapper) lock() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(m.cfg.LockFile), 0o755); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	f, err := os.OpenFile(m.cfg.LockFile, os.O_RDONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	deadline := time.Now().Add(m.cfg.Wait)
	delay := 500 * time.Microsecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", m.cfg.LockFile, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, conf.TryAgain("another netloom portmap has held %s for over %v; try again", m.cfg.LockFile, m.cfg.Wait)
		}
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Millisecond)
	}
}

// tryAgain turns a restore that gave up on the xtables lock into CNI code 11.
func (m *Mapper) tryAgain(err error) error {
	if errors.Is(err, errLockTimeout) {
		return conf.TryAgain("another program has held the xtables lock for over %v; try again: %v", m.cfg.Wait, err)
	}
	return err
}

// apply runs plan(t) for f under the lock, t read just before. A failed restore other than a lock
// timeout is tried once more on a fresh read: someone outside netloom (the reference plugin, an
// administrator) may have changed the table between the read and the write.
func (m *Mapper) apply(f family, t table, plan func(table) (batch, error)) error {
	for attempt := 0; ; attempt++ {
		b, err := plan(t)
		if err != nil || b.empty() {
			return err
		}
		err = m.tools.restore(f, b.String())
		if err == nil || errors.Is(err, errLockTimeout) || attempt == 1 {
			return m.tryAgain(err)
		}
		if t, err = m.read(f); err != nil {
			return err
		}
	}
}

// withContext prefixes err with the family. A CNI error (try again) stays one, so that its code reaches
// the runtime even through callers that check it with a type assertion.
func withContext(f family, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, fmt.Sprintf("%v: %s", f, te.Msg), te.Details)
	}
	return fmt.Errorf("%v: %w", f, err)
}

// joinErrors joins the families' errors, keeping the code of a CNI error among them.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	err := errors.Join(errs...)
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, err.Error(), te.Details)
	}
	return err
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
		f := ipv4
		if m.PodIP.Is6() {
			f = ipv6
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
	if c := o.ExternalSetMarkChain; c != "" && !safeWord.MatchString(c) {
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

// Add installs k's mappings in both families, replacing k's earlier ones, in one restore per family.
// Another attachment's mapping of one of the host keys fails it with *portmap.ConflictError before
// anything changes. When the second family fails after the first was written, k's rules of the first
// are removed again, so a failed Add leaves none of k's mappings.
func (m *Mapper) Add(k firewall.Key, ms []portmap.Mapping, o portmap.Options) error {
	if err := checkKey(k); err != nil {
		return err
	}
	if err := checkOptions(o); err != nil {
		return err
	}
	byFamily, err := normalize(ms)
	if err != nil {
		return err
	}
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()

	var tables [2]table
	var present [2]bool
	for _, f := range []family{ipv4, ipv6} {
		t, err := m.read(f)
		if err != nil && len(byFamily[f]) == 0 {
			// No such tool, or no such table in this kernel: nothing of k's to replace either. The
			// reference skips an unusable family the same way.
			continue
		}
		if err != nil {
			return fmt.Errorf("%v: %w", f, err)
		}
		if c := t.conflict(k, byFamily[f]); c != nil {
			return c
		}
		tables[f], present[f] = t, true
	}
	var done []family
	for _, f := range []family{ipv4, ipv6} {
		if !present[f] {
			continue
		}
		want := desired(k, byFamily[f], o, f == ipv6)
		err := m.apply(f, tables[f], func(t table) (batch, error) {
			if c := t.conflict(k, byFamily[f]); c != nil {
				return batch{}, c
			}
			return planAdd(t, k, want, o), nil
		})
		if err != nil {
			for _, g := range done {
				if t, rerr := m.read(g); rerr == nil {
					_ = m.apply(g, t, func(t table) (batch, error) { return planRemove(t, k), nil })
				}
			}
			var c *portmap.ConflictError
			if errors.As(err, &c) {
				return c
			}
			return withContext(f, err)
		}
		done = append(done, f)
	}
	return nil
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
	for _, f := range []family{ipv4, ipv6} {
		t, err := m.read(f)
		if errors.Is(err, exec.ErrNotFound) {
			continue
		}
		if err == nil {
			err = m.apply(f, t, func(t table) (batch, error) { return plan(t), nil })
		}
		if err != nil {
			errs = append(errs, withContext(f, err))
		}
	}
	return joinErrors(errs)
}

// Check reports what of k's mappings is missing or different, in both families.
func (m *Mapper) Check(k firewall.Key, ms []portmap.Mapping, o portmap.Options) error {
	if err := checkKey(k); err != nil {
		return err
	}
	if err := checkOptions(o); err != nil {
		return err
	}
	byFamily, err := normalize(ms)
	if err != nil {
		return err
	}
	var problems []string
	for _, f := range []family{ipv4, ipv6} {
		t, err := m.read(f)
		if err != nil && len(byFamily[f]) == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("%v: %w", f, err)
		}
		for _, p := range check(t, k, desired(k, byFamily[f], o, f == ipv6), o) {
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
