// Package xtables is netloom's one way to read and change iptables rule sets, used by the masquerade
// backend (firewall/iptables) and the portmap backend (portmap/iptables):
//
//   - Rule, one rule as iptables prints it, compared the way iptables would print it (Canonical);
//   - Parse, the parser of iptables-save and `iptables -S` output, into a Table;
//   - Batch, the changes one operation makes in one table, as iptables-restore lines;
//   - Runner, which reads a table (iptables-save), or only the chains an operation needs (`iptables -S
//     CHAIN`), and applies a Batch planned from it (one `iptables-restore --noflush` per IP family)
//     through Tools: Exec runs the iptables binaries of the build Config picks, Fake is an in-memory
//     stand-in for tests.
//
// Cost as the node fills: iptables-save prints every rule of the table, so an operation that reads it
// costs more with every pod on the node (measured with 1,000 pods' masquerade chains in the nat table,
// iptables 1.8.9 nf_tables: 14 ms of CPU per save on an empty table, 69 ms full). Listing one chain
// costs 13 ms empty and 25 ms full (the nf_tables build fetches every chain of the table whatever it
// lists; the legacy build copies the whole table out of the kernel for any command: 12 and 36 ms), and
// a restore 21 and 27 ms (legacy: 17 and 61). So the backends read only the chains they change, or
// nothing (ApplyGuess), and read the whole table only when that is not enough. A restore's -D (by rule
// or by number) makes the nf_tables build read and convert every rule of that chain: with 1,000 jumps
// in POSTROUTING, 8-10 ms more than with none, whatever the payload, and every restore of that build
// lists every chain of the table first. So where that build alone may hold the table, a chain and the
// jumps to it go, and a new chain with its rules and jumps comes, in one nf_tables transaction with no
// process (Exec.DropChain, Exec.AddChain: the latter writes the rules as iptables-nft encodes them,
// so iptables reads them back as its own).
//
// The xtables lock: the legacy build of iptables serialises every change on the machine (not per
// network namespace) through a flock of /run/xtables.lock, which kube-proxy, firewalld and iptables
// scripts take too. Exec's restores wait for it at most Config.Wait (`iptables-restore -w`), then fail
// with CNI code 11 (try again later) naming the lock. The nf_tables build takes no lock, and iptables-save
// takes none in either build, so reads never wait.
package xtables

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/fault"
	"github.com/netloom/netloom/pkg/nftnl"
)

// Family is one of the two sets of tables iptables keeps: IPv4 (iptables) or IPv6 (ip6tables).
type Family int

const (
	IPv4 Family = iota
	IPv6
)

// Families lists both families in the order the backends change them: IPv4 first.
func Families() []Family { return []Family{IPv4, IPv6} }

func (f Family) String() string { return [...]string{"iptables", "ip6tables"}[f] }

// Variant picks which build of the iptables tools runs.
type Variant string

const (
	// VariantSystem runs iptables-save and iptables-restore, whichever build the system selects.
	VariantSystem Variant = ""
	VariantLegacy Variant = "legacy" // iptables-legacy-save, iptables-legacy-restore
	VariantNFT    Variant = "nft"    // iptables-nft-save, iptables-nft-restore
)

const (
	// DefaultWait is how long a restore waits for the xtables lock unless Config says otherwise.
	DefaultWait = 60 * time.Second
	// LockFile is the xtables lock of the legacy build.
	LockFile = "/run/xtables.lock"
)

// Config picks the iptables tools; the zero value is the system's build with DefaultWait.
type Config struct {
	Variant Variant
	// Wait bounds how long one restore waits for the xtables lock; past it the restore fails with CNI
	// code 11. Zero: DefaultWait.
	Wait time.Duration
}

func (c Config) withDefaults() Config {
	if c.Wait <= 0 {
		c.Wait = DefaultWait
	}
	return c
}

// Command names f's iptables (or ip6tables) of c's build.
func (c Config) Command(f Family) string {
	if c.Variant == VariantSystem {
		return f.String()
	}
	return f.String() + "-" + string(c.Variant)
}

// Binaries names f's save and restore tools of c's build.
func (c Config) Binaries(f Family) (save, restore string) {
	base := c.Command(f)
	return base + "-save", base + "-restore"
}

// Tools reads and writes the tables of one network namespace: Exec, or Fake in tests.
type Tools interface {
	// Save returns `iptables-save -t table` output of family f.
	Save(f Family, table string) (string, error)
	// Restore runs `iptables-restore --noflush` of family f with input; a lock timeout is an error with
	// CNI code 11 (see IsLockTimeout).
	Restore(f Family, input string) error
	// List returns `iptables -t table -S chain` output of family f: the chain's declaration and its
	// rules. A chain that does not exist is an error wrapping ErrNoChain.
	List(f Family, table, chain string) (string, error)
	// DropChain deletes, without running iptables, the rules of from that jump to chain and chain
	// itself, all at once, when it can (see Exec.DropChain); before, unless nil, is called just before
	// the change is committed. Its answer says whether chain was surely absent (nothing to do), was
	// removed, or is for the caller to remove with a restore, the table left as it was.
	DropChain(f Family, table, from, chain string, before func()) Drop
	// AddChain creates chain with rules and appends jumps to it to from, without running iptables, all
	// at once, when it can (see Exec.AddChain); before, unless nil, is called just before the change
	// is committed. False: nothing changed, the caller restores with the tools.
	AddChain(f Family, table, from, chain string, rules, jumps []Rule, before func()) bool
}

// Drop is what DropChain found and did.
type Drop int

const (
	// DropUnsure: DropChain could not tell, or could not remove chain (the legacy build may hold the
	// table, or the kernel refused the transaction); the table is as it was.
	DropUnsure Drop = iota
	// DropAbsent: f's table surely has no such chain, so no rule jumps to it: nothing to do.
	DropAbsent
	// DropDone: chain and the jumps to it are gone.
	DropDone
)

// ErrNoChain is List's error for a chain that does not exist.
var ErrNoChain = errors.New("no such chain")

// Exec runs the iptables tools that its Config names, in the network namespace of the calling thread.
type Exec struct{ cfg Config }

// NewExec returns the Tools of c's build.
func NewExec(c Config) Exec { return Exec{cfg: c.withDefaults()} }

// Probe tells whether f's tools can be used here: the restore tool exists and `iptables-save -t table`
// reads the table (the reference plugins' test before they choose iptables). It returns what it read,
// so the operation that follows need not read it again.
func (x Exec) Probe(f Family, table string) (string, error) {
	_, restore := x.cfg.Binaries(f)
	if _, err := exec.LookPath(restore); err != nil {
		return "", err
	}
	return x.Save(f, table)
}

// ProbeChain is Probe for an operation that does not need the table: `iptables -t table -S chain`
// instead of the save, which is much less to read on a node with many pods' chains. A chain that does
// not exist is no failure.
func (x Exec) ProbeChain(f Family, table, chain string) error {
	_, restore := x.cfg.Binaries(f)
	if _, err := exec.LookPath(restore); err != nil {
		return err
	}
	if _, err := x.List(f, table, chain); err != nil && !errors.Is(err, ErrNoChain) {
		return err
	}
	return nil
}

func (x Exec) Save(f Family, table string) (string, error) {
	bin, _ := x.cfg.Binaries(f)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "-t", table)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s -t %s: %w: %s", bin, table, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// List runs `iptables -w <Wait> -t table -S chain`. The legacy build takes the xtables lock for it (and
// says "No chain/target/match by that name." of a chain that does not exist), the nf_tables build does
// not (and its 1.8.9 release says "chain `X' in table `nat' is incompatible" of a chain that does not
// exist); both exit with status 1 then.
func (x Exec) List(f Family, table, chain string) (string, error) {
	bin := x.cfg.Command(f)
	secs := int(math.Ceil(x.cfg.Wait.Seconds()))
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "-w", strconv.Itoa(secs), "-t", table, "-S", chain)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		var exit *exec.ExitError
		switch {
		case strings.Contains(msg, "holding the xtables lock"):
			return "", LockTimeout(bin, x.cfg.Wait)
		case errors.As(err, &exit) && exit.ExitCode() == 1 && noChain(msg, chain):
			return "", fmt.Errorf("%s -t %s -S %s: %w", bin, table, chain, ErrNoChain)
		}
		return "", fmt.Errorf("%s -t %s -S %s: %w: %s", bin, table, chain, err, msg)
	}
	return stdout.String(), nil
}

// DropChain deletes the rules of from that jump to chain, chain's rules and chain in one nf_tables
// transaction, when the nf_tables build alone may hold f's table: what iptables-nft-restore does with
// `-D from <jump>`, `-F chain` and `-X chain`, without its process and without its rule cache. For a
// -D, iptables-nft reads and converts every rule of from, and on a node with 1,000 pods POSTROUTING
// holds 1,000 jumps: that read made a restore some 8-10 ms slower than on an empty node (measured with
// iptables 1.8.9: 5.6 ms empty, 13.3 ms full), where this removal took 0.5 and 4.0 ms (the kernel's
// listing of the 1,000 rules, decoding only those that name chain).
//
// First it tells, without running iptables, whether f's table may have chain at all, in the build(s)
// of the tools x runs: the legacy build keeps its tables in the kernel's x_tables, which lists in
// /proc/net/ip_tables_names (ip6_tables_names) the tables it has in this namespace, and nothing tells
// their chains short of copying the whole table out; the nf_tables build keeps each as an nf_tables
// table of the same name in family ip (ip6), whose chains one netlink lookup finds by name. The answer
// is DropAbsent when the legacy table is not there and the nf_tables one has no such chain: no rule
// can jump to a chain that does not exist. This costs some 0.1 ms where listing the chain costs a
// process (13-25 ms). One /proc read and one netlink socket serve both the question and the removal.
//
// It returns DropUnsure, having changed nothing, when it cannot tell, when the legacy table is loaded
// (x's variant is legacy, or auto and the legacy build may hold the chain), or when the kernel refused
// the transaction (the chain or a jump went in the meantime, another chain jumps to chain): the caller
// then uses the tools, which report such a problem as iptables does.
func (x Exec) DropChain(f Family, table, from, chain string, before func()) Drop {
	legacy := legacyHas(f, table)
	t := nftnl.Table{Family: nftFamily(f), Name: table}
	var c *nftnl.Conn
	inNFT := false // the nf_tables build may hold chain
	if x.cfg.Variant != VariantLegacy {
		var err error
		if c, err = nftnl.Dial(); err != nil {
			c, inNFT = nil, !errors.Is(err, unix.EPROTONOSUPPORT) // no nf_tables: it holds nothing
		} else {
			defer c.Close()
			ok, err := c.HasChain(t, chain)
			inNFT = ok || err != nil
		}
	}
	switch {
	case !inNFT && !(x.cfg.Variant != VariantNFT && legacy):
		return DropAbsent
	case legacy || c == nil:
		return DropUnsure
	}
	jumps, err := c.JumpsTo(t, from, chain)
	if err != nil {
		return DropUnsure
	}
	var b nftnl.Batch
	for _, r := range jumps {
		b.Add(t.DelRule(from, r.Handle))
	}
	b.Add(t.FlushChain(chain))
	b.Add(t.DelChain(chain))
	msgs, err := b.Msgs()
	if err != nil {
		return DropUnsure
	}
	if before != nil {
		before()
	}
	if c.Transact(msgs) != nil {
		return DropUnsure
	}
	return DropDone
}

// nftFamily is the nf_tables family of f's tables in the nf_tables build.
func nftFamily(f Family) byte { return [...]byte{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6}[f] }

// legacyHas tells whether the legacy build may have f's table in the calling thread's namespace: true
// when it cannot tell.
func legacyHas(f Family, table string) bool {
	loaded, err := LegacyTableLoaded(f, table)
	return loaded || err != nil
}

// LegacyTableLoaded tells whether the legacy build's table of f exists in the calling thread's
// namespace, from the kernel's list of x_tables tables (/proc/net/ip_tables_names, ip6_tables_names),
// without running iptables: reading a legacy table with iptables-legacy would create it. A kernel
// without x_tables for that family has none.
func LegacyTableLoaded(f Family, table string) (bool, error) {
	name := [...]string{"ip_tables_names", "ip6_tables_names"}[f]
	b, err := os.ReadFile("/proc/thread-self/net/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return slices.Contains(strings.Fields(string(b)), table), nil
}

// noChain tells whether msg, what iptables printed when `-S chain` failed, says the chain is missing.
func noChain(msg, chain string) bool {
	return strings.Contains(msg, "No chain/target/match by that name") ||
		strings.Contains(msg, "chain `"+chain+"' in table") && strings.HasSuffix(msg, "is incompatible, use 'nft' tool.")
}

// maxInputInError is how much of a failed restore's input its error quotes: enough for the line that
// "Error occurred at line: N" points to in one attachment's batch.
const maxInputInError = 4096

// Restore runs `iptables-restore --noflush -w <Wait>`: the legacy build waits that long for the xtables
// lock, the nf_tables build needs no lock and accepts the flag.
func (x Exec) Restore(f Family, input string) error {
	_, bin := x.cfg.Binaries(f)
	secs := int(math.Ceil(x.cfg.Wait.Seconds()))
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--noflush", "-w", strconv.Itoa(secs))
	cmd.Stdin = strings.NewReader(input)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		// The legacy build says "Another app is currently holding the xtables lock. Stopped waiting
		// after 60s." and exits with status 4 (RESOURCE_PROBLEM).
		if strings.Contains(msg, "holding the xtables lock") {
			return LockTimeout(bin, x.cfg.Wait)
		}
		if len(input) > maxInputInError {
			input = input[:maxInputInError] + "\n..."
		}
		return fmt.Errorf("%s --noflush: %w: %s\ninput:\n%s", bin, err, msg, input)
	}
	return nil
}

// LockTimeout is the error of a restore by tool that waited wait for the xtables lock and gave up: CNI
// code 11, so the runtime tries the whole command again later.
func LockTimeout(tool string, wait time.Duration) error {
	return conf.TryAgain("%s: another program has held the xtables lock (%s) for over %v; try again later. "+
		"`fuser -v %s` shows who holds it (kube-proxy, firewalld and iptables scripts take it)",
		tool, LockFile, wait, LockFile)
}

// IsLockTimeout tells whether err is (or wraps) a restore's lock timeout.
func IsLockTimeout(err error) bool { return conf.Code(err) == conf.CodeTryAgainLater }

// Runner reads one table of each family and applies the changes planned from what it read.
type Runner struct {
	Tools Tools
	Table string // "nat"
	// IPv6Point names the fault point (fault.Point, a test hook) passed just before an IPv6 change is
	// committed, when IPv4 has been committed already or had nothing to change. Empty: none.
	IPv6Point string
}

// Read saves and parses f's table, keeping the rules of CNIChains.
func (r Runner) Read(f Family) (Table, error) {
	text, err := r.Tools.Save(f, r.Table)
	if err != nil {
		return Table{}, err
	}
	return Parse(text, r.Table, CNIChains)
}

// DropChain deletes, without running iptables, the rules of from that jump to chain and chain itself,
// all at once, when it can (Tools.DropChain). An IPv6 removal passes the fault point just before it is
// committed.
func (r Runner) DropChain(f Family, from, chain string) Drop {
	return r.Tools.DropChain(f, r.Table, from, chain, r.before(f))
}

// AddChain creates chain with rules and appends jumps to it to from, without running iptables, all at
// once, when it can (Tools.AddChain). An IPv6 addition passes the fault point just before it is
// committed.
func (r Runner) AddChain(f Family, from, chain string, rules, jumps []Rule) bool {
	return r.Tools.AddChain(f, r.Table, from, chain, rules, jumps, r.before(f))
}

// before is the hook an IPv6 change calls just before it is committed: the fault point, if any.
func (r Runner) before(f Family) func() {
	if f == IPv6 && r.IPv6Point != "" {
		return func() { fault.Point(r.IPv6Point) }
	}
	return nil
}

// ReadChains lists chains of f's table (`iptables -S`, one run each) into a Table: much less than Read
// on a table with many chains. A chain that does not exist is left out of the Table.
func (r Runner) ReadChains(f Family, chains ...string) (Table, error) {
	var text strings.Builder
	for _, c := range chains {
		out, err := r.Tools.List(f, r.Table, c)
		if errors.Is(err, ErrNoChain) {
			continue
		}
		if err != nil {
			return Table{}, err
		}
		text.WriteString(out)
		text.WriteString("\n")
	}
	return Parse(text.String(), r.Table, nil)
}

// ApplyGuess commits plan(guess), guess being what f's table is expected to hold, without reading it:
// a fresh attachment's batch is all new chains and rules, which the restore refuses whole if the
// guess was wrong (a chain that exists already). Then it reads the table and applies plan to what is
// there, as Apply does.
func (r Runner) ApplyGuess(f Family, guess Table, plan func(Table) (Batch, error)) error {
	return r.ApplyGuessOr(f, guess, func() (Table, error) { return r.Read(f) }, plan)
}

// ApplyGuessOr is ApplyGuess reading what read returns (say, only the chains plan needs) when the
// guess was wrong.
func (r Runner) ApplyGuessOr(f Family, guess Table, read func() (Table, error), plan func(Table) (Batch, error)) error {
	b, err := plan(guess)
	if err != nil || b.Empty() {
		return err
	}
	if f == IPv6 && r.IPv6Point != "" {
		fault.Point(r.IPv6Point)
	}
	err = r.Tools.Restore(f, b.Script(r.Table))
	if err == nil || IsLockTimeout(err) {
		return err
	}
	t, err := read()
	if err != nil {
		return err
	}
	return r.apply(f, t, plan, true)
}

// Apply commits plan(t) in one restore; t is f's table, read just before. A restore that fails other
// than by a lock timeout is planned and tried once more on a fresh read: someone outside netloom (the
// reference plugins, an administrator) may have changed the table between the read and the write.
func (r Runner) Apply(f Family, t Table, plan func(Table) (Batch, error)) error {
	return r.apply(f, t, plan, false)
}

// apply is Apply; passed says the operation has passed its fault point already (ApplyGuess).
func (r Runner) apply(f Family, t Table, plan func(Table) (Batch, error), passed bool) error {
	for attempt := 0; ; attempt++ {
		b, err := plan(t)
		if err != nil || b.Empty() {
			return err
		}
		if f == IPv6 && attempt == 0 && !passed && r.IPv6Point != "" {
			fault.Point(r.IPv6Point)
		}
		err = r.Tools.Restore(f, b.Script(r.Table))
		if err == nil || IsLockTimeout(err) || attempt == 1 {
			return err
		}
		if t, err = r.Read(f); err != nil {
			return err
		}
	}
}

func (d Drop) String() string {
	switch d {
	case DropAbsent:
		return "absent"
	case DropDone:
		return "done"
	}
	return "unsure"
}
