// Package fault is a test hook that kills a plugin process at a named step (NETLOOM_FAULT_POINT), so
// tests can check that DEL and GC clean up whatever a half-done command left. Any package may mark a
// point: a plugin's ADD steps (pkg/plugin.Steps marks each), and the firewall backends between the
// changes of two IP families.
package fault

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Env names the environment variable that arms Point. It is a test hook: nothing sets it
// in production, and while it is unset Point does nothing.
const Env = "NETLOOM_FAULT_POINT"

// faults is what Point needs to know about the running process: the plugin's name, set once by
// Main, and how many fault points the process has passed.
//
// This is the one piece of package-level mutable state in netloom, on purpose: a fault point sits in
// the middle of a plugin's steps, which get only *skel.CmdArgs from the skeleton, so threading a
// value from Main down to every call site would change every step's signature for a test hook. Both
// fields are atomics, written by Main before any command runs, and a process runs one command.
var faults struct {
	plugin atomic.Pointer[string]
	passed atomic.Int64
}

// SetPlugin records the running plugin's name for Point.
func SetPlugin(name string) { faults.plugin.Store(&name) }

// Point is a test hook that simulates a crash (kill -9, power loss of the process) at a chosen
// point of a command, so tests can check that DEL and GC clean up whatever a half-done ADD left.
//
// When the environment variable NETLOOM_FAULT_POINT equals "<plugin>:<step>", or "<plugin>:<n>"
// where n is the 1-based count of Point calls in this process (this one included), the process
// sends itself SIGKILL: it dies at once, with no deferred rollback, no result and no error on stdout.
// <plugin> is the name the binary passed to plugin.Main. plugin.Add.Run marks a point before each of an
// ADD's steps, named as the step, and "done" after the last; the iptables backends mark
// "masq-iptables-ipv6" and "portmap-iptables-ipv6" before committing an IPv6 change. Without the
// variable, Point only counts.
func Point(step string) {
	n := faults.passed.Add(1)
	spec, ok := os.LookupEnv(Env)
	if !ok {
		return
	}
	name := ""
	if p := faults.plugin.Load(); p != nil {
		name = *p
	}
	if faultMatches(spec, name, step, n) {
		// SIGKILL cannot be caught: nothing after this line runs, exactly as after `kill -9`.
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is delivered asynchronously; never run the step meanwhile
	}
}

// faultMatches tells whether spec ("<plugin>:<step>" or "<plugin>:<n>") selects the n-th fault
// point, named step, of the plugin called name.
func faultMatches(spec, name, step string, n int64) bool {
	p, s, ok := strings.Cut(spec, ":")
	if !ok || name == "" || p != name || s == "" {
		return false
	}
	if s == step {
		return true
	}
	want, err := strconv.ParseInt(s, 10, 64)
	return err == nil && want >= 1 && want == n
}
