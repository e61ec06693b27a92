package ipam

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
)

// The lease index lets an ADD or DEL find an attachment's leases without reading every lease file: a
// network with 10,000 leases would otherwise cost 10,000 file reads per call (the reference plugin's
// cost). The lease files stay the truth; the index is a cache netloom keeps beside them and trusts only
// while nothing else changed the directory:
//
//   - <dir>/.netloom-index holds a header "netloom-lease-index 1 <S>" and one line per lease change,
//     "+\t<containerID>\t<ifname>\t<addr>" or "-\t...", in the order they happened.
//   - After every operation under the lock, netloom sets the directory's mtime back to S, a time in the
//     past. Any other change to the directory (the reference plugin's ADD or DEL, a file created or
//     removed by hand, a netloom process killed half-way) sets its mtime to the current time, which is
//     not S: the next netloom operation sees that, reads every lease file and writes the index again.
//   - The leases an operation acts on are read from their files before use, so a file edited in place
//     (which leaves the directory's mtime alone) is never trusted from the index either.
//
// The reference reads every file of the directory looking for its container ID; the index's content
// never equals a lease's, so it passes over it.
const (
	IndexFile   = ".netloom-index"
	indexHeader = "netloom-lease-index 1 "
	// compactAfter: an index with this many removals, and more removals than live leases, is
	// rewritten from its live lines when next loaded.
	compactAfter = 1024
)

// leaseIndex is the index's content once loaded.
type leaseIndex struct {
	data []byte // every line after the header
}

// dirMtime is the lease directory's mtime in nanoseconds.
func (s *Store) dirMtime() (int64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(s.dir, &st); err != nil {
		return 0, fmt.Errorf("lease directory: %w", err)
	}
	return st.Mtim.Nano(), nil
}

// checkSentinel tells whether the index on disk describes the directory: its header's S is the
// directory's mtime. It reads only the header.
func (s *Store) checkSentinel() {
	s.sentinel = 0
	mtime, err := s.dirMtime()
	if err != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(s.dir, IndexFile), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer f.Close()
	var buf [64]byte
	n, _ := io.ReadFull(f, buf[:])
	line, _, ok := bytes.Cut(buf[:n], []byte("\n"))
	if !ok || !bytes.HasPrefix(line, []byte(indexHeader)) {
		return
	}
	v, err := strconv.ParseInt(string(line[len(indexHeader):]), 10, 64)
	if err == nil && v == mtime && v != 0 {
		s.sentinel = v
	}
}

// restoreSentinel sets the directory's mtime back to the index's S after this process changed the
// directory (a lease, last_reserved_ip, a STATUS probe file): what it changed in leases is in the index.
func (s *Store) restoreSentinel() error {
	if s.sentinel == 0 {
		return nil
	}
	mtime, err := s.dirMtime()
	if err != nil || mtime == s.sentinel {
		return err
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(s.sentinel)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, s.dir, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// ensureIndex loads the index, rebuilding it from the lease files when it does not describe them. It
// returns false when the leases cannot be indexed (a container ID or interface name holding a tab or a
// line break, written by hand): callers then read every file.
func (s *Store) ensureIndex() (bool, error) {
	if s.idx != nil {
		return true, nil
	}
	if s.noIndex {
		return false, nil
	}
	if s.sentinel != 0 {
		raw, err := readIndex(filepath.Join(s.dir, IndexFile))
		if err == nil {
			if _, body, ok := bytes.Cut(raw, []byte("\n")); ok && (len(body) == 0 || body[len(body)-1] == '\n') {
				s.idx = &leaseIndex{data: body}
				if removed := bytes.Count(body, []byte("-\t")); removed > compactAfter && 2*removed > bytes.Count(body, []byte("\n")) {
					if err := s.writeIndex(s.idx.live()); err != nil {
						s.dropIndex()
						return false, nil
					}
				}
				return true, nil
			}
		}
	}
	leases, err := s.Leases()
	if err != nil {
		return false, err
	}
	if err := s.writeIndex(leases); err != nil {
		// The index is only a cache: a full disk or a read-only directory costs the scan, not the call.
		s.dropIndex()
		return false, nil
	}
	return s.idx != nil, nil
}

// dropIndex stops using the index for this process and removes it, best effort (a stale one is
// ignored anyway: its S is not the directory's mtime).
func (s *Store) dropIndex() {
	s.idx, s.sentinel, s.noIndex = nil, 0, true
	_ = os.Remove(filepath.Join(s.dir, IndexFile))
}

func readIndex(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// indexable tells whether a lease fits on one index line.
func indexable(l Lease) bool {
	return !strings.ContainsAny(l.ContainerID, "\t\r\n") && !strings.ContainsAny(l.IfName, "\t\r\n")
}

// writeIndex replaces the index with leases and makes it describe the directory: the file is created
// with a header whose S is zero (never valid) and the leases, then the directory's mtime is set to S, a
// second in the past, read back as the filesystem stores it, and written over the zero. A write that
// fails half-way leaves the zero: an index nobody trusts.
func (s *Store) writeIndex(leases []Lease) error {
	path := filepath.Join(s.dir, IndexFile)
	var body bytes.Buffer
	body.WriteString(fmt.Sprintf("%s%020d\n", indexHeader, 0))
	for _, l := range leases {
		if !indexable(l) {
			s.dropIndex()
			return nil
		}
		body.WriteString(indexLine('+', l))
	}
	s.sentinel = 0
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, fileMode)
	if err != nil {
		return fmt.Errorf("lease index: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(body.Bytes()); err != nil {
		return fmt.Errorf("lease index: %w", err)
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(time.Now().Add(-time.Second).UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, s.dir, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lease index: %w", err)
	}
	stored, err := s.dirMtime()
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(fmt.Appendf(nil, "%020d", stored), int64(len(indexHeader))); err != nil {
		return fmt.Errorf("lease index: %w", err)
	}
	_, rest, _ := bytes.Cut(body.Bytes(), []byte("\n"))
	s.idx, s.sentinel = &leaseIndex{data: rest}, stored
	return nil
}

func indexLine(op byte, l Lease) string {
	return string(op) + "\t" + l.ContainerID + "\t" + l.IfName + "\t" + l.Addr.String() + "\n"
}

// record appends a lease change to a valid index; when the index does not describe the directory,
// nothing is written (the next operation rebuilds it).
func (s *Store) record(op byte, l Lease) error {
	if s.sentinel == 0 {
		return nil
	}
	if !indexable(l) {
		s.sentinel = 0 // the index cannot say it: let the mtime show the change
		return nil
	}
	line := indexLine(op, l)
	f, err := os.OpenFile(filepath.Join(s.dir, IndexFile), os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW, 0)
	if err != nil {
		s.sentinel = 0
		return nil //nolint:nilerr // an index that cannot be written is rebuilt next time
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		s.sentinel = 0
		return nil //nolint:nilerr
	}
	if s.idx != nil {
		s.idx.data = append(s.idx.data, line...)
	}
	return nil
}

// find returns the leases the index says name containerID, in index order (addresses removed since
// are left out).
func (x *leaseIndex) find(containerID string) []Lease {
	needle := []byte("\t" + containerID + "\t")
	present := map[netip.Addr]Lease{}
	var order []netip.Addr
	for pos := 0; ; {
		i := bytes.Index(x.data[pos:], needle)
		if i < 0 {
			break
		}
		at := pos + i
		start := bytes.LastIndexByte(x.data[:at], '\n') + 1
		end := bytes.IndexByte(x.data[at:], '\n')
		if end < 0 {
			break
		}
		end += at
		pos = end
		op, l, ok := parseIndexLine(x.data[start:end])
		if !ok || l.ContainerID != containerID {
			continue
		}
		if op == '+' {
			if _, seen := present[l.Addr]; !seen {
				order = append(order, l.Addr)
			}
			present[l.Addr] = l
		} else if present[l.Addr] == l {
			delete(present, l.Addr)
		}
	}
	var out []Lease
	for _, a := range order {
		if l, ok := present[a]; ok {
			out = append(out, l)
			delete(present, a)
		}
	}
	return out
}

// live is every lease the index holds.
func (x *leaseIndex) live() []Lease {
	present := map[netip.Addr]Lease{}
	var order []netip.Addr
	for line := range bytes.SplitSeq(x.data, []byte("\n")) {
		op, l, ok := parseIndexLine(line)
		if !ok {
			continue
		}
		if op == '+' {
			order = append(order, l.Addr)
			present[l.Addr] = l
		} else if present[l.Addr] == l {
			delete(present, l.Addr)
		}
	}
	var out []Lease
	for _, a := range order {
		if l, ok := present[a]; ok {
			out = append(out, l)
			delete(present, a)
		}
	}
	return out
}

func parseIndexLine(line []byte) (byte, Lease, bool) {
	f := strings.Split(string(line), "\t")
	if len(f) != 4 || (f[0] != "+" && f[0] != "-") {
		return 0, Lease{}, false
	}
	a, err := netip.ParseAddr(f[3])
	if err != nil {
		return 0, Lease{}, false
	}
	return f[0][0], Lease{Addr: a, ContainerID: f[1], IfName: f[2]}, true
}

// OwnedLeases returns the leases a owns (held by it, or legacy leases of its container), each read
// back from its file. It uses the index when it describes the directory, and reads every lease file
// otherwise; an index that disagrees with a file is rebuilt and asked again.
func (s *Store) OwnedLeases(a conf.Attachment) ([]Lease, error) {
	for attempt := 0; ; attempt++ {
		ok, err := s.ensureIndex()
		if err != nil {
			return nil, err
		}
		if !ok {
			return s.ownedByScan(a)
		}
		var out []Lease
		agrees := true
		for _, l := range s.idx.find(a.ContainerID) {
			if !l.OwnedBy(a) {
				continue
			}
			onDisk, err := s.readLease(l.Addr)
			if err != nil {
				return nil, err
			}
			if onDisk == nil || onDisk.ContainerID != l.ContainerID || onDisk.IfName != l.IfName {
				agrees = false
				break
			}
			out = append(out, *onDisk)
		}
		if agrees || attempt > 0 {
			return out, nil
		}
		s.idx, s.sentinel = nil, 0 // rebuild from the files
	}
}

func (s *Store) ownedByScan(a conf.Attachment) ([]Lease, error) {
	leases, err := s.Leases()
	if err != nil {
		return nil, err
	}
	var out []Lease
	for _, l := range leases {
		if l.OwnedBy(a) {
			out = append(out, l)
		}
	}
	return out, nil
}

// readLease reads the lease of addr from its file; nil when there is none.
func (s *Store) readLease(addr netip.Addr) (*Lease, error) {
	name := addr.Unmap().String()
	data, err := readSmall(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ELOOP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", name, err)
	}
	l := parseLease(data)
	l.Addr, l.file = addr.Unmap(), name
	return &l, nil
}

// LeaseOf returns the lease on addr, read from its file, or nil when addr is free.
func (s *Store) LeaseOf(addr netip.Addr) (*Lease, error) { return s.readLease(addr) }

// Taken reports whether addr has a lease file (or anything else under its name).
func (s *Store) Taken(addr netip.Addr) bool {
	_, err := os.Lstat(filepath.Join(s.dir, addr.Unmap().String()))
	return !errors.Is(err, fs.ErrNotExist)
}
