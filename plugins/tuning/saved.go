package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
)

// saved is what ADD found on the interface before changing it, for DEL to put back: the reference
// plugin's file <dataDir>/<containerID>_<ifname>.json, field for field, so either plugin restores a pod
// the other tuned. A field is set only for what ADD changed.
type saved struct {
	MAC      string `json:"mac,omitempty"`
	Promisc  *bool  `json:"promisc,omitempty"`
	MTU      int    `json:"mtu,omitempty"`
	Allmulti *bool  `json:"allmulti,omitempty"`
	TxQLen   *int   `json:"txQLen,omitempty"`
}

// savedFor returns what to save before applying w to an interface that now has attrs.
func savedFor(w settings, attrs link.Attrs) saved {
	var s saved
	if w.mac != nil {
		s.MAC = attrs.MAC.String()
	}
	if w.promisc {
		s.Promisc = &attrs.Promisc
	}
	if w.mtu != 0 {
		s.MTU = attrs.MTU
	}
	if w.allmulti != nil {
		s.Allmulti = &attrs.Allmulti
	}
	if w.txQLen != nil {
		s.TxQLen = &attrs.TxQLen
	}
	return s
}

// under returns s with the fields older (a file an earlier, unfinished ADD of the same attachment
// wrote) holds taken from older: those are the values from before any tuning.
func (s saved) under(older saved) saved {
	if older.MAC != "" {
		s.MAC = older.MAC
	}
	if older.Promisc != nil {
		s.Promisc = older.Promisc
	}
	if older.MTU != 0 {
		s.MTU = older.MTU
	}
	if older.Allmulti != nil {
		s.Allmulti = older.Allmulti
	}
	if older.TxQLen != nil {
		s.TxQLen = older.TxQLen
	}
	return s
}

// savedPath is the reference's file name for an attachment's saved state.
func savedPath(dataDir, containerID, ifName string) string {
	return filepath.Join(dataDir, containerID+"_"+ifName+".json")
}

// readSaved reads the file at path; ok is false when there is none.
func readSaved(path string) (s saved, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return saved{}, false, nil
	}
	if err != nil {
		return saved{}, false, conf.IOFailure("read saved interface state: %v", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return saved{}, false, conf.IOFailure("saved interface state %s is corrupt: %v", path, err)
	}
	return s, true, nil
}

// writeSaved writes s to path atomically (a crash leaves the old file or the new, never half of one),
// in the reference's layout.
func writeSaved(path string, s saved) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return conf.IOFailure("dataDir: create %s: %v", filepath.Dir(path), err)
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return conf.IOFailure("dataDir: write %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return conf.IOFailure("dataDir: rename %s: %v", tmp, err)
	}
	return nil
}

// removeSaved removes the file at path; it succeeds when there is none.
func removeSaved(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return conf.IOFailure("remove saved interface state: %v", err)
	}
	return nil
}

// restore puts back on l what s saved, in the reference's order (MTU first, so a MAC or mode change
// never meets an MTU the saved one replaced). Every field is tried; every failure is returned.
func restore(l netlink.Link, s saved) error {
	var errs []error
	if s.MTU != 0 {
		errs = append(errs, link.SetMTU(l, s.MTU))
	}
	if s.MAC != "" {
		mac, err := net.ParseMAC(s.MAC)
		if err != nil {
			err = fmt.Errorf("saved MAC %q: %w", s.MAC, err)
		} else {
			err = link.SetMAC(l, mac)
		}
		errs = append(errs, err)
	}
	if s.Promisc != nil {
		errs = append(errs, link.SetPromisc(l, *s.Promisc))
	}
	if s.Allmulti != nil {
		errs = append(errs, link.SetAllmulti(l, *s.Allmulti))
	}
	if s.TxQLen != nil {
		errs = append(errs, link.SetTxQLen(l, *s.TxQLen))
	}
	return errors.Join(errs...)
}
