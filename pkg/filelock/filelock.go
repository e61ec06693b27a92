// Package filelock is netloom's one way to serialise its own processes: an exclusive flock(2) on a
// file. A lock dies with its holder, so a plugin killed mid-operation never leaves one behind, and
// flock (unlike fcntl locks) is the lock the reference plugins and the iptables tools take, so a lock
// on the same file excludes them too.
package filelock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTimeout is Create's error when another process held the lock for longer than the wait.
var ErrTimeout = errors.New("timed out waiting for the lock")

// Lock takes an exclusive lock on the open file fd, waiting as long as it takes.
func Lock(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			return err
		}
	}
}

// Poll bounds how often a bounded wait tries the lock again: from first to most, doubling.
const (
	pollFirst = 500 * time.Microsecond
	pollMost  = 10 * time.Millisecond
)

// Create opens path, creating it (mode 0600) and its directory (0755) when missing and never following
// a symbolic link, and takes an exclusive lock on it, waiting at most wait; zero or less waits as long
// as it takes. The returned function releases the lock. Past the wait the error wraps ErrTimeout.
func Create(path string, wait time.Duration) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	fd := int(f.Fd())
	if wait <= 0 {
		err = Lock(fd)
	} else {
		err = lockWithin(fd, wait)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// lockWithin tries the lock without blocking until it gets it or wait has passed: flock has no timeout,
// and a blocked flock cannot be interrupted without a signal.
func lockWithin(fd int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	delay := pollFirst
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (held for over %v)", ErrTimeout, wait)
		}
		time.Sleep(delay)
		delay = min(2*delay, pollMost)
	}
}
