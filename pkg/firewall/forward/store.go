package forward

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
)

// DefaultStateDir holds, per network, one file per attachment that netloom's firewall opened.
const DefaultStateDir = "/var/lib/cni/netloom-firewall"

// Store records which addresses each attachment's rules are for. The reference's pod rules name no
// attachment, so this record is what lets GC find the rules of attachments that are gone and lets a DEL
// without prevResult remove them. Attachments the reference plugin added have no record: their rules
// go only with a DEL that carries prevResult, as with the reference.
type Store struct{ Dir string }

// record is one attachment's file.
type record struct {
	ContainerID string       `json:"containerID"`
	IfName      string       `json:"ifname"`
	Addrs       []netip.Addr `json:"addrs"`
}

func (s Store) networkDir(network string) string { return filepath.Join(s.Dir, network) }

// path is k's file: the container ID and the interface name, which hold no '/' (CNI's rules), joined by
// a character neither starts with.
func (s Store) path(k firewall.Key) string {
	return filepath.Join(s.networkDir(k.Network), k.ContainerID+"@"+k.IfName)
}

// Save records addrs for k, replacing what was recorded; the file appears whole or not at all.
func (s Store) Save(k firewall.Key, addrs []netip.Addr) error {
	if err := k.Check(); err != nil {
		return err
	}
	b, err := json.Marshal(record{ContainerID: k.ContainerID, IfName: k.IfName, Addrs: addrs})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.networkDir(k.Network), 0o700); err != nil {
		return conf.IOFailure("firewall state: %v", err)
	}
	tmp := s.path(k) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return conf.IOFailure("firewall state: %v", err)
	}
	if err := os.Rename(tmp, s.path(k)); err != nil {
		_ = os.Remove(tmp)
		return conf.IOFailure("firewall state: %v", err)
	}
	return nil
}

// Load returns the addresses recorded for k; none when nothing is.
func (s Store) Load(k firewall.Key) ([]netip.Addr, error) {
	r, err := readRecord(s.path(k))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return r.Addrs, err
}

// Remove forgets k, and the network's directory when k was its last attachment. It succeeds when there
// is nothing to forget.
func (s Store) Remove(k firewall.Key) error {
	if err := os.Remove(s.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return conf.IOFailure("firewall state: %v", err)
	}
	_ = os.Remove(s.networkDir(k.Network)) // fails while other attachments' files are there
	return nil
}

// List returns every attachment of network with a record, and its addresses.
func (s Store) List(network string) (map[conf.Attachment][]netip.Addr, error) {
	dir := s.networkDir(network)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, conf.IOFailure("firewall state: %v", err)
	}
	out := map[conf.Attachment][]netip.Addr{}
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		r, err := readRecord(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		a := conf.Attachment{ContainerID: r.ContainerID, IfName: r.IfName}
		out[a] = append(out[a], r.Addrs...)
	}
	return out, nil
}

func readRecord(path string) (record, error) {
	var r record
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, conf.IOFailure("firewall state %s: %v", path, err)
	}
	return r, nil
}

// Stale splits the records of network into the attachments that valid no longer lists and the addresses
// their rules hold that no listed attachment also holds (so an address that moved on to a live pod
// keeps its rules).
func Stale(records map[conf.Attachment][]netip.Addr, valid map[conf.Attachment]bool) (gone []conf.Attachment, addrs []netip.Addr) {
	live := map[netip.Addr]bool{}
	for a, as := range records {
		if valid[a] {
			for _, ip := range as {
				live[ip] = true
			}
		}
	}
	for a, as := range records {
		if valid[a] {
			continue
		}
		gone = append(gone, a)
		for _, ip := range as {
			if !live[ip] && !slices.Contains(addrs, ip) {
				addrs = append(addrs, ip)
			}
		}
	}
	slices.SortFunc(gone, func(x, y conf.Attachment) int {
		return strings.Compare(x.ContainerID+"@"+x.IfName, y.ContainerID+"@"+y.IfName)
	})
	slices.SortFunc(addrs, netip.Addr.Compare)
	return gone, addrs
}
