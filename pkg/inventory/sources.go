package inventory

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netloom/netloom/pkg/bgp"
	"github.com/netloom/netloom/pkg/cniconf"
	"github.com/netloom/netloom/pkg/firewall/forward"
	"github.com/netloom/netloom/pkg/ipam"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
)

// DefaultTuningDir is where the tuning plugin (netloom's and the reference's) saves what its DEL restores.
const DefaultTuningDir = "/run/cni/tuning"

// Dirs says where to look. The zero value of each field is the node's default.
type Dirs struct {
	// CacheDir is libcni's cache directory (libcni.CacheDir, /var/lib/cni), holding results/.
	CacheDir string
	// LeaseDir is host-local's default dataDir (/var/lib/cni/networks): every network in it is read.
	LeaseDir string
	// FirewallDir, BGPDir and TuningDir are netloom's records (forward.DefaultStateDir,
	// bgp.DefaultStateDir, DefaultTuningDir).
	FirewallDir, BGPDir, TuningDir string
	// Networks are the node's conflists: the leases of their host-local dataDirs are read too.
	Networks []*libcni.NetworkConfigList
	// SkipRules leaves the masquerade and portmap rules unread (no iptables or nft run).
	SkipRules bool
}

func (d Dirs) withDefaults() Dirs {
	d.CacheDir = cmp.Or(d.CacheDir, libcni.CacheDir)
	d.LeaseDir = cmp.Or(d.LeaseDir, ipam.DefaultDataDir)
	d.FirewallDir = cmp.Or(d.FirewallDir, forward.DefaultStateDir)
	d.BGPDir = cmp.Or(d.BGPDir, bgp.DefaultStateDir)
	d.TuningDir = cmp.Or(d.TuningDir, DefaultTuningDir)
	return d
}

// List reads every source and returns the node's attachments.
func List(d Dirs) Inventory {
	d = d.withDefaults()
	b := &builder{byKey: map[Key]*Attachment{}}
	leaseDirs := map[[2]string]bool{} // (dataDir, network)
	for _, l := range d.Networks {
		for _, dir := range hostLocalDirs(l) {
			leaseDirs[[2]string{dir, l.Name}] = true
		}
	}
	for _, l := range b.readCache(d.CacheDir) {
		for _, dir := range hostLocalDirs(l) {
			leaseDirs[[2]string{dir, l.Name}] = true
		}
	}
	for _, name := range subdirs(d.LeaseDir, b) {
		leaseDirs[[2]string{d.LeaseDir, name}] = true
	}
	for dn := range leaseDirs {
		b.readLeases(dn[0], dn[1])
	}
	b.readFirewall(d.FirewallDir)
	b.readBGP(d.BGPDir)
	b.readTuning(d.TuningDir)
	if !d.SkipRules {
		b.readRules()
	}
	for _, a := range b.byKey {
		a.State, a.Why = liveness(a)
	}
	return b.inventory()
}

// readCache adds the runtime's cached attachments and returns the configurations they were made with.
func (b *builder) readCache(cacheDir string) []*libcni.NetworkConfigList {
	cni := libcni.NewCNIConfigWithCacheDir(nil, cacheDir, nil)
	cached, err := cni.GetCachedAttachments("")
	if err != nil {
		b.fail("runtime cache %s: %v", cacheDir, err)
		return nil
	}
	var lists []*libcni.NetworkConfigList
	for _, c := range cached {
		a := b.get(Key{c.Network, c.ContainerID, c.IfName})
		a.seen(SourceCache)
		a.Cached, a.NetNS = c, c.NetNS
		a.HostPorts = hostPortsOf(c.CapabilityArgs)
		list, err := cniconf.ListFromBytes(c.Config)
		if err != nil {
			b.fail("runtime cache: %s: configuration: %v", a.Key(), err)
			continue
		}
		lists = append(lists, list)
		for _, p := range list.Plugins {
			a.Plugins = append(a.Plugins, p.Network.Type)
		}
		rt := &libcni.RuntimeConf{ContainerID: c.ContainerID, IfName: c.IfName, NetNS: c.NetNS}
		res, err := cni.GetNetworkListCachedResult(list, rt)
		if err != nil || res == nil {
			continue // a cache entry without result: the config and netns still tell what we need
		}
		r, err := current.NewResultFromResult(res)
		if err != nil {
			b.fail("runtime cache: %s: result: %v", a.Key(), err)
			continue
		}
		for _, ip := range r.IPs {
			if p, ok := prefixOf(ip); ok {
				a.addAddr(p)
			}
		}
		// The host end of the pod's link is the last interface outside any sandbox (bridge lists the
		// bridge first, then the veth; ptp and the overlays list only the veth).
		for _, i := range r.Interfaces {
			if i.Sandbox == "" {
				a.HostIf = i.Name
			}
		}
	}
	return lists
}

func prefixOf(ip *current.IPConfig) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(ip.Address.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := ip.Address.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones), true
}

// hostLocalDirs returns the dataDirs of l's host-local IPAM (the default one when a plugin sets none).
func hostLocalDirs(l *libcni.NetworkConfigList) []string {
	var out []string
	for _, p := range l.Plugins {
		var c struct {
			IPAM struct {
				Type    string `json:"type"`
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		}
		if json.Unmarshal(p.Bytes, &c) == nil && c.IPAM.Type == "host-local" {
			out = append(out, cmp.Or(c.IPAM.DataDir, ipam.DefaultDataDir))
		}
	}
	return out
}

// subdirs lists the directories in dir (none when dir does not exist).
func subdirs(dir string, b *builder) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			b.fail("%s: %v", dir, err)
		}
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func (b *builder) readLeases(dataDir, network string) {
	s, err := ipam.OpenExistingStore(dataDir, network)
	if err != nil {
		b.fail("leases of %s in %s: %v", network, dataDir, err)
		return
	}
	if s == nil {
		return
	}
	defer s.Close()
	leases, err := s.Leases()
	if err != nil {
		b.fail("leases of %s in %s: %v", network, dataDir, err)
		return
	}
	for _, l := range leases {
		var at time.Time
		if st, err := os.Stat(s.Path(l)); err == nil {
			at = st.ModTime()
		}
		for _, a := range b.find(network, l.ContainerID, l.IfName) {
			a.seen(SourceLease)
			a.addAddr(netip.PrefixFrom(l.Addr, l.Addr.BitLen()))
			if at.After(a.LeasedAt) {
				a.LeasedAt = at
			}
		}
	}
}

func (b *builder) readFirewall(dir string) {
	st := forward.Store{Dir: dir}
	for _, network := range subdirs(dir, b) {
		recs, err := st.List(network)
		if err != nil {
			b.fail("firewall records of %s: %v", network, err)
			continue
		}
		for at := range recs {
			b.get(Key{network, at.ContainerID, at.IfName}).seen(SourceFirewall)
		}
	}
}

func (b *builder) readBGP(dir string) {
	for _, network := range subdirs(dir, b) {
		st, err := bgp.OpenStore(dir, network)
		if err != nil {
			b.fail("bgp-route records of %s: %v", network, err)
			continue
		}
		recs, errs := st.All()
		for _, err := range errs {
			b.fail("bgp-route records of %s: %v", network, err)
		}
		for _, r := range recs {
			b.get(Key{network, r.ContainerID, r.IfName}).seen(SourceBGP)
		}
	}
}

// readTuning marks the attachments whose settings tuning saved (<containerID>_<ifname>.json). The file
// names no network, and a container ID may hold '_', so a file matching no known attachment is not
// listed.
func (b *builder) readTuning(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			b.fail("tuning records: %v", err)
		}
		return
	}
	files := map[string]bool{}
	for _, e := range ents {
		files[e.Name()] = true
	}
	for k, a := range b.byKey {
		if k.IfName != "" && files[k.ContainerID+"_"+k.IfName+".json"] {
			a.seen(SourceTuning)
		}
	}
}

// liveness tells whether a's pod is still there.
func liveness(a *Attachment) (State, string) {
	if a.Cached == nil {
		return Uncached, "no runtime cache entry"
	}
	if a.NetNS == "" {
		return Dead, "the cache records no netns"
	}
	if _, err := os.Stat(a.NetNS); err != nil {
		return Dead, fmt.Sprintf("netns %s is gone", a.NetNS)
	}
	err := netns.With(a.NetNS, func(pod ns.NetNS) error {
		return pod.Do(func(ns.NetNS) error {
			_, err := link.ByName(a.IfName)
			return err
		})
	})
	switch {
	case errors.Is(err, link.ErrNotFound):
		return Dead, fmt.Sprintf("netns %s holds no %s", a.NetNS, a.IfName)
	case err != nil && netns.Gone(err):
		return Dead, fmt.Sprintf("netns %s is gone", a.NetNS)
	case err != nil:
		return Unknown, fmt.Sprintf("netns %s: %v", a.NetNS, err)
	}
	return Alive, ""
}

func (k Key) String() string {
	return fmt.Sprintf("%s/%s/%s", k.Network, k.ContainerID, cmp.Or(k.IfName, "*"))
}
