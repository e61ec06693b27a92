package nftables

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/netloom/netloom/pkg/firewall"
)

// DefaultRecordDir holds one record per attachment masqueraded through nftables. It is under /run
// because the rules it points at die with a reboot too.
const DefaultRecordDir = "/run/netloom/masq"

// record is what Ensure remembers of an attachment's rules in masq_checks: their handles, so Remove and
// Check look them up one by one instead of listing every attachment's rules. It names neither the
// namespace nor the table: every use looks the rules up and checks their comments, and anything that
// does not match sends the caller back to listing the chain.
type record struct {
	// Pending is written before a transaction that adds rules and cleared with their handles after
	// it: a record still pending after a crash says that rules may exist that it does not list.
	Pending bool     `json:"pending,omitempty"`
	Handles []uint64 `json:"handles,omitempty"`
}

// recordState is what a record file tells.
type recordState int

const (
	// noRecord: no file. For Ensure, a new attachment (no listing needed); for Remove and Check,
	// rules made by the reference plugins or an older netloom, or none: list.
	noRecord recordState = iota
	// unusable: pending or garbled; list.
	unusable
	// usable: Handles are the attachment's rules, as far as a lookup confirms them.
	usable
)

// parseRecord reads a record file's content.
func parseRecord(b []byte) (record, recordState) {
	var r record
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil || d.More() || r.Pending || len(r.Handles) == 0 {
		return record{}, unusable
	}
	for _, h := range r.Handles {
		if h == 0 {
			return record{}, unusable
		}
	}
	return r, usable
}

// records is the directory of record files, one per attachment, named by its instance hash.
type records struct{ dir string }

func (rs records) path(k firewall.Key) string { return filepath.Join(rs.dir, instanceHash(k)) }

// load reads k's record.
func (rs records) load(k firewall.Key) (record, recordState, error) {
	b, err := os.ReadFile(rs.path(k))
	if errors.Is(err, fs.ErrNotExist) {
		return record{}, noRecord, nil
	}
	if err != nil {
		return record{}, unusable, fmt.Errorf("masquerade record: %w", err)
	}
	r, st := parseRecord(b)
	return r, st, nil
}

// store replaces k's record with r.
func (rs records) store(k firewall.Key, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	// A plain write: a reader that finds it cut short (a crash) takes it as garbled and lists, which is
	// safe, and an attachment's record is written by its own ADD only. Replacing it atomically (a
	// temporary file, fsync, rename) tripled the cost of an Ensure.
	err = os.WriteFile(rs.path(k), append(b, '\n'), 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		// The first record since boot.
		if err = os.MkdirAll(rs.dir, 0o700); err == nil {
			err = os.WriteFile(rs.path(k), append(b, '\n'), 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("masquerade record: %w", err)
	}
	return nil
}

// remove deletes k's record; a missing one is no error.
func (rs records) remove(k firewall.Key) error {
	if err := os.Remove(rs.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("masquerade record: %w", err)
	}
	return nil
}

// removeWhere deletes the records whose name (an instance hash) stale matches.
func (rs records) removeWhere(stale func(name string) bool) error {
	entries, err := os.ReadDir(rs.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("masquerade records: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if name := e.Name(); !strings.HasPrefix(name, ".") && stale(name) {
			if err := os.Remove(filepath.Join(rs.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("masquerade record: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// NewWithRecords returns the nftables Masquerader with its records in dir: for tests, whose namespaces
// go away with rules the records would outlive.
func NewWithRecords(dir string) *Masq { return &Masq{records: records{dir: dir}} }
