// Package doctor runs the checks of `netloom doctor`: each looks at one thing a node's pod network
// needs (a plugin binary, a sysctl, a firewall policy, a lease with no pod) and reports what it found
// and, when it is wrong, the fix in one line.
//
// A check is a function of the Node it inspects, so tests point it at a node network namespace, a
// private CNI bin directory and private state directories. Checks only read; a check that can repair
// what it found does so only through Fix, which `netloom doctor --fix` calls, and only through the
// plugins' own verbs (GC, DEL), never by deleting what it guesses is unused.
//
// Checks lists the checks in report order, one file each (binaries.go, validate.go, forwarding.go,
// brnetfilter.go, forwardpolicy.go, cidrs.go, hairpin.go, mtu.go); each decides in a pure function of
// what it read (unit-tested with tables) and reads the kernel in a separate one. fwgate*.go read the
// FORWARD chains and forward hooks that two checks judge; netinfo.go reads what the checks need of a
// conflist; cache.go the runtime's result cache.
package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/netloom/netloom/pkg/cniconf"
)

// Status is a finding's verdict.
type Status int

const (
	// OK: nothing wrong.
	OK Status = iota
	// Warn: not as recommended, but pods work.
	Warn
	// Fail: this breaks pods (or their DEL), now or on the next ADD.
	Fail
	// Unknown: the check could not look (no permission, a tool missing, a file unreadable).
	Unknown
)

var statusNames = [...]string{OK: "ok", Warn: "warn", Fail: "FAIL", Unknown: "unknown"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// MarshalText writes the status in lower case, as --json shows it.
func (s Status) MarshalText() ([]byte, error) { return []byte(strings.ToLower(s.String())), nil }

// Finding is one line of the report.
type Finding struct {
	// Check names the check, e.g. "plugin-binaries" (stable: scripts match on it).
	Check string `json:"check"`
	// Subject is what was looked at: a conflist and plugin, a sysctl, an interface, a lease.
	Subject string `json:"subject,omitempty"`
	Status  Status `json:"status"`
	// Found says what was seen, in a sentence.
	Found string `json:"found"`
	// Fix is the remedy in one line (a command when there is one); empty when Status is OK.
	Fix string `json:"fix,omitempty"`
}

// Network is one conflist the node's runtimes would load (cniconf.LoadDir, cniconf.LoadFile).
type Network = cniconf.Network

// Node is what the checks inspect. The zero value of every field means the node's defaults.
type Node struct {
	// Networks are the conflists to check (from --conflist, or every file of --conf-dir).
	Networks []Network
	// BinDirs are the CNI plugin directories, searched in order (--cni-bin-dir or CNI_PATH).
	BinDirs []string
	// CacheDir is libcni's result cache (default /var/lib/cni), where runtimes record attachments.
	CacheDir string

	// bins remembers what each plugin binary answered, so one run asks each VERSION once.
	bins *binaries
	// fw remembers the firewall's reading, which two checks judge.
	fw *gateReading
}

// Check is one named check.
type Check struct {
	Name string
	// Run inspects the node. It returns at least one finding: an OK one when all is well, so the
	// report shows the check ran.
	Run func(n *Node) []Finding
	// Fix, when set, repairs what Run reported as Fail or Warn (netloom doctor --fix) and returns
	// what it did, one line per change.
	Fix func(n *Node) ([]string, error)
}

// Report is the outcome of running checks.
type Report struct {
	Findings []Finding `json:"findings"`
}

// Run runs every check in order.
func Run(n *Node, checks []Check) Report {
	var r Report
	for _, c := range checks {
		fs := c.Run(n)
		for i := range fs {
			if fs[i].Check == "" {
				fs[i].Check = c.Name
			}
		}
		r.Findings = append(r.Findings, fs...)
	}
	return r
}

// ExitCode is netloom doctor's exit status: 1 when a finding breaks pods, else 2 when a check could
// not look, else 0 (warnings allowed).
func (r Report) ExitCode() int {
	code := 0
	for _, f := range r.Findings {
		switch f.Status {
		case Fail:
			return 1
		case Unknown:
			code = 2
		}
	}
	return code
}

// WriteTable prints the report for a person: the worst findings first, in check order within a status.
func (r Report) WriteTable(w io.Writer) error {
	fs := append([]Finding(nil), r.Findings...)
	sort.SliceStable(fs, func(i, j int) bool { return rank(fs[i].Status) > rank(fs[j].Status) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tSUBJECT\tFOUND\tFIX")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Status, f.Check, orDash(f.Subject), f.Found, orDash(f.Fix))
	}
	return tw.Flush()
}

// WriteJSON prints the report for a program.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// rank orders statuses for the table: Fail, Unknown, Warn, OK.
func rank(s Status) int {
	switch s {
	case Fail:
		return 3
	case Unknown:
		return 2
	case Warn:
		return 1
	}
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// binaries finds the plugin binaries of BinDirs, each once per Node.
func (n *Node) binaries() *binaries {
	if n.bins == nil {
		n.bins = newBinaries(n.BinDirs)
	}
	return n.bins
}

// cacheDir is the result cache to read: CacheDir, else libcni's default.
func (n *Node) cacheDir() string {
	if n.CacheDir == "" {
		return DefaultCacheDir
	}
	return n.CacheDir
}

// Repair calls Fix of every check that has one and reported a Fail or Warn in r (netloom doctor --fix),
// in check order, and returns what they did. It goes on past a check whose Fix fails and returns every
// error.
func Repair(n *Node, checks []Check, r Report) ([]string, error) {
	broken := map[string]bool{}
	for _, f := range r.Findings {
		if f.Status == Fail || f.Status == Warn {
			broken[f.Check] = true
		}
	}
	var done []string
	var errs []error
	for _, c := range checks {
		if c.Fix == nil || !broken[c.Name] {
			continue
		}
		lines, err := c.Fix(n)
		done = append(done, lines...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	return done, errors.Join(errs...)
}
