package ipam

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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
//   - <dir>/.netloom-index holds a header "netloom-lease-index 2 <S> <n>", then n bytes of the live
//     leases sorted by container ID, one "<containerID>\t<ifname>\t<addr>" line each (found by binary
//     search in the mapped file, without reading the rest), then the changes since, appended as
//     "+\t<containerID>\t<ifname>\t<addr>" or "-\t...". Once the appended part is long, the next
//     process rewrites the file sorted.
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
	indexHeader = "netloom-lease-index 2 "
	// headerLen: indexHeader, S in 20 digits, a space, the sorted part's length in 12 digits, "\n".
	headerLen = len(indexHeader) + 20 + 1 + 12 + 1
	// compactAfter: an index with this many appended changes is rewritten sorted when next loaded.
	compactAfter = 1024
)

// leaseIndex is the index file, mapped.
type leaseIndex struct {
	mapping []byte // the whole file, to unmap
	sorted  []byte // the sorted live leases
	tail    []byte // the changes appended since
}

func (x *leaseIndex) close() {
	if x != nil && x.mapping != nil {
		_ = unix.Munmap(x.mapping)
		x.mapping = nil
	}
}

// dirMtime is the lease directory's mtime in nanoseconds.
func (s *Store) dirMtime() (int64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(s.dir, &st); err != nil {
		return 0, fmt.Errorf("lease directory: %w", err)
	}
	return st.Mtim.Nano(), nil
}

// parseHeader returns S and the sorted part's length from the index's first line.
func parseHeader(b []byte) (sentinel int64, sortedLen int, ok bool) {
	if len(b) < headerLen || !bytes.HasPrefix(b, []byte(indexHeader)) || b[headerLen-1] != '\n' {
		return 0, 0, false
	}
	f := strings.Fields(string(b[len(indexHeader) : headerLen-1]))
	if len(f) != 2 {
		return 0, 0, false
	}
	v, err1 := strconv.ParseInt(f[0], 10, 64)
	n, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || v == 0 || n < 0 {
		return 0, 0, false
	}
	return v, n, true
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
	var buf [headerLen]byte
	if _, err := io.ReadFull(f, buf[:]); err != nil {
		return
	}
	if v, _, ok := parseHeader(buf[:]); ok && v == mtime {
		s.sentinel = v
	}
}

// changed records the directory's mtime after a change this process made, so that Close can tell its
// own changes from someone else's.
func (s *Store) changed() {
	if s.sentinel != 0 {
		s.ownMtime, _ = s.dirMtime()
	}
}

// restoreSentinel sets the directory's mtime back to the index's S after this process changed the
// directory (a lease, last_reserved_ip, a STATUS probe file): what it changed in leases is in the
// index. A program that changes the directory without the lock in the same clock tick as this
// process's last change is not told apart: the one case the index can miss until the next change.
func (s *Store) restoreSentinel() error {
	if s.sentinel == 0 {
		return nil
	}
	mtime, err := s.dirMtime()
	if err != nil || mtime == s.sentinel {
		return err
	}
	if mtime != s.ownMtime {
		// Changed after this process's last change, by something that does not take the lock: leave
		// the mtime, so the next operation rebuilds the index from the files.
		return nil
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(s.sentinel)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, s.dir, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// ensureIndex loads the index, rebuilding it from the lease files when it does not describe them. It
// returns false when there is no index to use: the leases cannot be indexed (a container ID or
// interface name holding a tab or a line break, written by hand) or it cannot be written (a full disk);
// callers then read every file.
func (s *Store) ensureIndex() (bool, error) {
	if s.idx != nil {
		return true, nil
	}
	if s.noIndex {
		return false, nil
	}
	if s.sentinel != 0 {
		if x := s.mapIndex(); x != nil {
			s.idx = x
			if bytes.Count(x.tail, []byte("\n")) <= compactAfter {
				return true, nil
			}
			live := x.live()
			x.close()
			s.idx = nil
			if err := s.writeIndex(live); err != nil {
				s.dropIndex()
				return false, nil
			}
			return s.ensureIndex()
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
	if s.noIndex {
		return false, nil
	}
	return s.ensureIndex()
}

// mapIndex maps the index file read-only; nil when it is not a whole index.
func (s *Store) mapIndex() *leaseIndex {
	f, err := os.OpenFile(filepath.Join(s.dir, IndexFile), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < int64(headerLen) {
		return nil
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	x := &leaseIndex{mapping: m}
	_, n, ok := parseHeader(m)
	if !ok || headerLen+n > len(m) || (len(m) > headerLen && m[len(m)-1] != '\n') {
		x.close()
		return nil
	}
	x.sorted, x.tail = m[headerLen:headerLen+n], m[headerLen+n:]
	return x
}

// dropIndex stops using the index for this process and removes it, best effort (a stale one is
// ignored anyway: its S is not the directory's mtime).
func (s *Store) dropIndex() {
	s.idx.close()
	s.idx, s.sentinel, s.noIndex = nil, 0, true
	_ = os.Remove(filepath.Join(s.dir, IndexFile))
}

// indexable tells whether a lease fits on one index line.
func indexable(l Lease) bool {
	return !strings.ContainsAny(l.ContainerID, "\t\r\n") && !strings.ContainsAny(l.IfName, "\t\r\n")
}

// writeIndex replaces the index with leases, sorted, and makes it describe the directory: the file is
// written with a header whose S is zero (never valid), then the directory's mtime is set to S, a second
// in the past, read back as the filesystem stores it, and written over the zero. A write that fails
// half-way leaves the zero: an index nobody trusts.
func (s *Store) writeIndex(leases []Lease) error {
	for _, l := range leases {
		if !indexable(l) {
			s.dropIndex()
			return nil
		}
	}
	leases = slices.Clone(leases)
	slices.SortFunc(leases, func(a, b Lease) int {
		return cmp.Or(strings.Compare(a.ContainerID, b.ContainerID), strings.Compare(a.IfName, b.IfName), a.Addr.Compare(b.Addr))
	})
	var sorted bytes.Buffer
	for _, l := range leases {
		sorted.WriteString(l.ContainerID + "\t" + l.IfName + "\t" + l.Addr.String() + "\n")
	}
	s.idx.close()
	s.idx, s.sentinel = nil, 0
	f, err := os.OpenFile(filepath.Join(s.dir, IndexFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, fileMode)
	if err != nil {
		return fmt.Errorf("lease index: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(fmt.Appendf(nil, "%s%020d %012d\n", indexHeader, 0, sorted.Len()), sorted.Bytes()...)); err != nil {
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
	s.sentinel = stored
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
	// What this process mapped no longer has the change: map again when asked.
	s.idx.close()
	s.idx = nil
	if !indexable(l) {
		s.sentinel = 0 // the index cannot say it: let the mtime show the change
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.dir, IndexFile), os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW, 0)
	if err != nil {
		s.sentinel = 0 // an index that cannot be written is rebuilt next time
		return nil
	}
	defer f.Close()
	if _, err := f.WriteString(indexLine(op, l)); err != nil {
		s.sentinel = 0
	}
	return nil
}

// lineAt returns the line of b holding offset i: its start and its end (the offset of its '\n').
func lineAt(b []byte, lo, i int) (start, end int) {
	start = lo + bytes.LastIndexByte(b[lo:i], '\n') + 1
	end = start + bytes.IndexByte(b[start:], '\n')
	return start, end
}

// find returns the leases the index says name containerID (addresses removed since left out).
func (x *leaseIndex) find(containerID string) []Lease {
	present := map[netip.Addr]Lease{}
	var order []netip.Addr
	apply := func(op byte, l Lease) {
		if op == '+' {
			if _, seen := present[l.Addr]; !seen {
				order = append(order, l.Addr)
			}
			present[l.Addr] = l
		} else if present[l.Addr] == l {
			delete(present, l.Addr)
		}
	}
	// The sorted part: the first line whose container ID is not below containerID, by binary search.
	key := []byte(containerID)
	lo, hi := 0, len(x.sorted)
	for lo < hi {
		start, end := lineAt(x.sorted, lo, lo+(hi-lo)/2)
		id, _, _ := bytes.Cut(x.sorted[start:end], []byte("\t"))
		if bytes.Compare(id, key) < 0 {
			lo = end + 1
		} else {
			hi = start
		}
	}
	for lo < len(x.sorted) {
		end := lo + bytes.IndexByte(x.sorted[lo:], '\n')
		l, ok := parseLeaseLine(x.sorted[lo:end])
		if !ok || l.ContainerID != containerID {
			break
		}
		apply('+', l)
		lo = end + 1
	}
	// The appended changes, in order.
	needle := []byte("\t" + containerID + "\t")
	for pos := 0; ; {
		i := bytes.Index(x.tail[pos:], needle)
		if i < 0 {
			break
		}
		start, end := lineAt(x.tail, 0, pos+i)
		pos = end + 1
		if op, l, ok := parseChange(x.tail[start:end]); ok && l.ContainerID == containerID {
			apply(op, l)
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
	for line := range bytes.SplitSeq(x.sorted, []byte("\n")) {
		if l, ok := parseLeaseLine(line); ok {
			present[l.Addr] = l
		}
	}
	for line := range bytes.SplitSeq(x.tail, []byte("\n")) {
		op, l, ok := parseChange(line)
		switch {
		case !ok:
		case op == '+':
			present[l.Addr] = l
		case present[l.Addr] == l:
			delete(present, l.Addr)
		}
	}
	out := make([]Lease, 0, len(present))
	for _, l := range present {
		out = append(out, l)
	}
	return out
}

// parseLeaseLine reads "<containerID>\t<ifname>\t<addr>".
func parseLeaseLine(line []byte) (Lease, bool) {
	f := strings.Split(string(line), "\t")
	if len(f) != 3 {
		return Lease{}, false
	}
	a, err := netip.ParseAddr(f[2])
	if err != nil {
		return Lease{}, false
	}
	return Lease{Addr: a, ContainerID: f[0], IfName: f[1]}, true
}

// parseChange reads "+\t<containerID>\t<ifname>\t<addr>" or "-\t...".
func parseChange(line []byte) (byte, Lease, bool) {
	if len(line) < 2 || (line[0] != '+' && line[0] != '-') || line[1] != '\t' {
		return 0, Lease{}, false
	}
	l, ok := parseLeaseLine(line[2:])
	return line[0], l, ok
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
			onDisk, err := s.LeaseOf(l.Addr)
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
		s.idx.close()
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

// LeaseOf reads the lease of addr from its file; nil when addr is free.
func (s *Store) LeaseOf(addr netip.Addr) (*Lease, error) {
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

// Taken reports whether addr has a lease file (or anything else under its name).
func (s *Store) Taken(addr netip.Addr) bool {
	_, err := os.Lstat(filepath.Join(s.dir, addr.Unmap().String()))
	return !errors.Is(err, fs.ErrNotExist)
}
