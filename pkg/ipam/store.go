package ipam

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/filelock"
)

// The reference host-local's on-disk layout, kept byte for byte so either plugin reads the other's
// leases and both serialise on the same lock.
const (
	// DefaultDataDir is where leases live unless the configuration's dataDir says otherwise.
	DefaultDataDir = "/var/lib/cni/networks"
	// LockFile is flocked for the whole of an operation on a network's leases.
	LockFile = "lock"
	// LastReservedPrefix + the range set's index names the file holding the set's last handed-out address.
	LastReservedPrefix = "last_reserved_ip."
	// LineBreak separates the container ID from the interface name in a lease file.
	LineBreak = "\r\n"

	dirMode  = 0o700
	fileMode = 0o600
	// maxLeaseFile bounds what is read of a lease file: a container ID, a line break and an ifname.
	maxLeaseFile = 4096
)

// Lease is one leased address and the attachment that holds it.
type Lease struct {
	Addr        netip.Addr
	ContainerID string
	// IfName is empty for a lease written by host-local before it recorded interface names (the file
	// holds the container ID only); such a lease belongs to every interface of that container.
	IfName string
	file   string // the file's name, as found on disk
}

// Legacy reports whether the lease file holds no interface name.
func (l Lease) Legacy() bool { return l.IfName == "" }

// HeldBy reports whether the lease is exactly a's (legacy leases never are; see OwnedBy).
func (l Lease) HeldBy(a conf.Attachment) bool {
	return l.ContainerID == a.ContainerID && l.IfName == a.IfName
}

// OwnedBy reports whether the lease belongs to a: held by it, or a legacy lease of a's container.
func (l Lease) OwnedBy(a conf.Attachment) bool {
	return l.HeldBy(a) || (l.Legacy() && l.ContainerID == a.ContainerID)
}

func (l Lease) String() string {
	if l.Legacy() {
		return fmt.Sprintf("%s (container %s)", l.Addr, l.ContainerID)
	}
	return fmt.Sprintf("%s (%s/%s)", l.Addr, l.ContainerID, l.IfName)
}

// Store is one network's lease directory, locked for as long as it is open: every method runs under
// the lock, and Close releases it. The lock is a flock on <dir>/lock, the file the reference plugin
// locks, so netloom and reference processes exclude each other too.
type Store struct {
	dir  string
	lock *os.File

	// The lease index (index.go): sentinel is its S while it describes the directory (0: it does not
	// or was not checked), idx its content once loaded, noIndex set when the leases cannot be indexed.
	sentinel int64
	ownMtime int64 // the directory's mtime after this process's last change
	idx      *leaseIndex
	noIndex  bool
	scans    int // full reads of the lease files, for the tests
}

// OpenStore creates <dataDir>/<network> when missing (mode 0700; an existing directory keeps its
// mode) and blocks until it holds the network's lock. network must be one path component; callers
// validate it with conf.ValidateFileComponent.
func OpenStore(dataDir, network string) (*Store, error) {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	dir := filepath.Join(dataDir, network)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	return lockDir(dir)
}

// OpenExistingStore is OpenStore for commands that only read or remove (DEL, CHECK, GC): when the
// network's directory does not exist it returns (nil, nil) rather than creating it.
func OpenExistingStore(dataDir, network string) (*Store, error) {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	dir := filepath.Join(dataDir, network)
	// ENOTDIR: dataDir runs through a regular file, so the directory cannot exist either.
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	return lockDir(dir)
}

func lockDir(dir string) (*Store, error) {
	// MkdirAll and Stat follow a symbolic link planted at the network's directory: never write through one.
	if st, err := os.Lstat(dir); err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("lease directory %s is not a directory (a symbolic link?); refusing to use it", dir)
	}
	// The reference creates the lock file 0750 and opens it read-only; flock needs no write access.
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDONLY|os.O_CREATE|unix.O_NOFOLLOW, fileMode)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := filelock.Lock(int(f.Fd())); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	s := &Store{dir: dir, lock: f}
	s.checkSentinel()
	return s, nil
}

// Dir is the network's lease directory.
func (s *Store) Dir() string { return s.dir }

// Close makes the index describe the directory again (its mtime back to the index's S, when every
// lease change of this process is in the index) and releases the lock.
func (s *Store) Close() error {
	err := s.restoreSentinel()
	s.idx.close()
	// Closing the only descriptor of the open file releases its flock.
	return errors.Join(err, s.lock.Close())
}

// Leases lists every lease file of the network. Files whose name is not an address (the lock, the
// last-reserved files) are not leases.
func (s *Store) Leases() ([]Lease, error) {
	s.scans++
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	var out []Lease
	for _, e := range ents {
		a, err := netip.ParseAddr(e.Name())
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		data, err := readSmall(filepath.Join(s.dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // released by a process that does not take the lock
		}
		if err != nil {
			return nil, fmt.Errorf("read lease %s: %w", e.Name(), err)
		}
		l := parseLease(data)
		l.Addr, l.file = a.Unmap(), e.Name()
		out = append(out, l)
	}
	return out, nil
}

// Path is the file that holds l.
func (s *Store) Path(l Lease) string { return filepath.Join(s.dir, l.file) }

// parseLease reads "containerID\r\nifname", or the older "containerID" alone.
func parseLease(data []byte) Lease {
	id, ifname, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	return Lease{ContainerID: strings.TrimSpace(id), IfName: strings.TrimSpace(ifname)}
}

func readSmall(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxLeaseFile))
}

// Reserve leases addr to a, recording it as the last address handed out from range set setIdx. It
// returns false, and changes nothing, when addr is already leased.
func (s *Store) Reserve(addr netip.Addr, a conf.Attachment, setIdx int) (bool, error) {
	name := addr.Unmap().String()
	path := filepath.Join(s.dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, fileMode)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	_, err = f.WriteString(strings.TrimSpace(a.ContainerID) + LineBreak + a.IfName)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.writeLastReserved(setIdx, name)
	}
	if err != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	err = s.record('+', Lease{Addr: addr.Unmap(), ContainerID: strings.TrimSpace(a.ContainerID), IfName: a.IfName})
	s.changed()
	return true, err
}

func (s *Store) writeLastReserved(setIdx int, addr string) error {
	path := filepath.Join(s.dir, LastReservedPrefix+strconv.Itoa(setIdx))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, fileMode)
	if err != nil {
		return fmt.Errorf("record last reserved address: %w", err)
	}
	_, err = f.WriteString(addr)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record last reserved address: %w", err)
	}
	return nil
}

// LastReserved returns the address last handed out from range set setIdx, if the store recorded one.
// It is only a hint for round-robin: a missing or garbled file just restarts at the set's beginning.
func (s *Store) LastReserved(setIdx int) (netip.Addr, bool) {
	data, err := readSmall(filepath.Join(s.dir, LastReservedPrefix+strconv.Itoa(setIdx)))
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(strings.TrimSpace(string(data)))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// Release removes l's file; a lease that is already gone is released.
func (s *Store) Release(l Lease) error {
	name := l.file
	if name == "" {
		name = l.Addr.String()
	}
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("release %s: %w", l, err)
	}
	err := s.record('-', Lease{Addr: l.Addr.Unmap(), ContainerID: strings.TrimSpace(l.ContainerID), IfName: l.IfName})
	s.changed()
	return err
}

// ReleaseAttachment releases every lease a holds, whatever range it is in (the configuration may have
// changed since the ADD). Like the reference, when a holds none it releases the legacy leases of a's
// container instead. It returns what it released.
func (s *Store) ReleaseAttachment(a conf.Attachment) ([]Lease, error) {
	leases, err := s.OwnedLeases(a)
	if err != nil {
		return nil, err
	}
	var held, legacy []Lease
	for _, l := range leases {
		switch {
		case l.HeldBy(a):
			held = append(held, l)
		case l.Legacy() && l.ContainerID == a.ContainerID:
			legacy = append(legacy, l)
		}
	}
	if len(held) == 0 {
		held = legacy
	}
	var errs []error
	var released []Lease
	for _, l := range held {
		if err := s.Release(l); err != nil {
			errs = append(errs, err)
			continue
		}
		released = append(released, l)
	}
	return released, errors.Join(errs...)
}

// CheckWritable creates and removes a file in the lease directory, proving an ADD could record a lease.
func (s *Store) CheckWritable() error {
	f, err := os.CreateTemp(s.dir, ".netloom-status-*")
	if err != nil {
		return fmt.Errorf("lease directory %s is not writable: %w", s.dir, err)
	}
	name := f.Name()
	f.Close()
	defer s.changed()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("lease directory %s: remove probe file: %w", s.dir, err)
	}
	return nil
}

// AllocateNext leases to a the next free address of set, the configuration's range set setIdx, in
// round-robin order after the set's last reserved address. taken says which addresses are leased (the
// caller has listed Leases); an address whose file exists anyway is skipped. A full set is an
// *ExhaustedError.
func (s *Store) AllocateNext(set RangeSet, setIdx int, a conf.Attachment, taken func(netip.Addr) bool) (netip.Addr, error) {
	last, _ := s.LastReserved(setIdx)
	busy := map[netip.Addr]bool{}
	isTaken := func(x netip.Addr) bool { return busy[x] || taken(x) }
	for {
		addr, _, ok := set.Pick(last, isTaken)
		if !ok {
			return netip.Addr{}, &ExhaustedError{Set: set, SetIdx: setIdx, Size: set.Size()}
		}
		reserved, err := s.Reserve(addr, a, setIdx)
		if err != nil {
			return netip.Addr{}, err
		}
		if reserved {
			return addr, nil
		}
		// A file Leases did not list: not a regular file, or written by something that skips the lock.
		busy[addr] = true
	}
}
