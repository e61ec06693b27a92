// Package harness is netloom's one helper package for integration tests: it builds the plugins, makes
// uniquely named network namespaces, drives the binaries through libcni (what containerd and CRI-O use),
// through cnitool and by direct exec, and sends test traffic between namespaces a test created.
//
// Everything a helper creates is named uniquely and removed in t.Cleanup, so tests run in parallel and
// leave nothing behind even when they fail.
package harness

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// maxIfNameLen is the kernel's limit on an interface name (IFNAMSIZ minus the NUL byte).
const maxIfNameLen = 15

// minRandomHex is the least randomness Unique keeps, whatever the prefix.
const minRandomHex = 6

// RequireRoot skips t unless the process is root. With NETLOOM_REQUIRE_ROOT=1 (set by `make test` when
// run as root, and by CI) a non-root run fails instead, so a suite can never pass by skipping.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NETLOOM_REQUIRE_ROOT") == "1" {
		t.Fatal("this test needs root (NETLOOM_REQUIRE_ROOT=1 forbids skipping it)")
	}
	t.Skip("needs root: run as root, e.g. `sudo make test`")
}

// Unique returns prefix followed by random hex, at most 15 bytes in all, so it is a valid interface
// name. A prefix too long to leave minRandomHex random characters is shortened.
func Unique(prefix string) string {
	if len(prefix) > maxIfNameLen-minRandomHex {
		prefix = prefix[:maxIfNameLen-minRandomHex]
	}
	n := min(maxIfNameLen-len(prefix), 8)
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return prefix + hex.EncodeToString(b)[:n]
}
