package bgp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
)

// DefaultStateDir is where bgp-route records what each attachment announced, and where netloomd reads
// it back when it starts, so a restart does not lose the pods' paths.
const DefaultStateDir = "/var/lib/cni/netloom-bgp"

// Record is what one attachment announced through one speaker.
type Record struct {
	Speaker       string         `json:"speaker"`
	ContainerID   string         `json:"containerID"`
	IfName        string         `json:"ifName"`
	Announcements []Announcement `json:"announcements"`
}

// maxRecord bounds a record file: a handful of prefixes, never more than a few KiB.
const maxRecord = 1 << 20

// Store is the records of one network under a state directory: <dir>/<network>/<containerID>.<ifName>,
// files 0600 in directories 0700, never opened through a symbolic link. Every name part is validated
// by the caller (conf.ValidateFileComponent) before it reaches a path.
type Store struct{ dir string }

// OpenStore returns the store of network under stateDir, creating its directory.
func OpenStore(stateDir, network string) (*Store, error) {
	if err := conf.ValidateFileComponent("name", network); err != nil {
		return nil, err
	}
	dir := filepath.Join(stateDir, network)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, conf.IOFailure("bgp-route state: %v", err)
	}
	// MkdirAll follows a symbolic link planted at the network's directory: refuse to write through one.
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
		return nil, conf.IOFailure("bgp-route state: %s is not a directory (a symbolic link?)", dir)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(containerID, ifName string) string {
	return filepath.Join(s.dir, containerID+"."+ifName)
}

// Write records r, replacing any earlier record of the attachment.
func (s *Store) Write(r Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	// The temporary file's leading dot keeps it apart from every record (container IDs start with a
	// letter or digit), whatever the interface is called.
	tmp, err := os.OpenFile(filepath.Join(s.dir, "."+r.ContainerID+"."+r.IfName+".tmp"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return conf.IOFailure("bgp-route state: %v", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return conf.IOFailure("bgp-route state: %v", err)
	}
	if err := os.Rename(tmp.Name(), s.path(r.ContainerID, r.IfName)); err != nil {
		os.Remove(tmp.Name())
		return conf.IOFailure("bgp-route state: %v", err)
	}
	return nil
}

// Read returns the record of an attachment; ok is false when there is none.
func (s *Store) Read(containerID, ifName string) (r Record, ok bool, err error) {
	return readRecord(s.path(containerID, ifName))
}

func readRecord(path string) (r Record, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("bgp-route state %s: %w", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return r, false, fmt.Errorf("bgp-route state %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRecord))
	if err != nil {
		return r, false, fmt.Errorf("bgp-route state %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, false, fmt.Errorf("bgp-route state %s: %w", path, err)
	}
	return r, true, nil
}

// Remove deletes an attachment's record; absent is fine.
func (s *Store) Remove(containerID, ifName string) error {
	if err := os.Remove(s.path(containerID, ifName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return conf.IOFailure("bgp-route state: %v", err)
	}
	return nil
}

// All returns every record of the network; unreadable files are reported in errs and skipped.
func (s *Store) All() (records []Record, errs []error) {
	return readDir(s.dir)
}

func readDir(dir string) (records []Record, errs []error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, []error{err}
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, ok, err := readRecord(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			records = append(records, r)
		}
	}
	return records, errs
}

// AllNetworks returns the records of every network under stateDir: what netloomd re-announces when
// it starts.
func AllNetworks(stateDir string) (records []Record, errs []error) {
	ents, err := os.ReadDir(stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, []error{err}
	}
	for _, e := range ents {
		if e.IsDir() {
			r, es := readDir(filepath.Join(stateDir, e.Name()))
			records, errs = append(records, r...), append(errs, es...)
		}
	}
	return records, errs
}
