package doctor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/cniconf"
	"github.com/netloom/netloom/pkg/inventory"
	"github.com/netloom/netloom/pkg/link"
)

// LeftoversName is the leftover check's name.
const LeftoversName = "leftovers"

// defaultBinDir is where runtimes find CNI plugins when nothing says otherwise.
const defaultBinDir = "/opt/cni/bin"

// fixTimeout bounds one DEL or GC that --fix runs.
const fixTimeout = 2 * time.Minute

// addGrace is how long an uncached attachment with a fresh lease is taken for an ADD in progress:
// host-local writes the lease early in the chain's ADD, libcni caches the result only once the whole
// chain returned. Such an attachment is reported but spared by --fix (listed as valid to GC).
const addGrace = 2 * time.Minute

// Leftovers returns the check of what attachments that are gone left behind: leases, masquerade rules,
// portmap entries (iptables and nftables), netloom's records, and veths on a network's bridge. dirs
// says where the leases and records are (its zero value: the node's defaults); the runtime cache and
// the conflists are the Node's.
//
// An attachment is gone when the runtime's cache has it but its netns or interface is not there any
// more (dead), or when no runtime's cache has it at all (uncached). A lease or a portmap entry of one is
// a Fail: leaked leases exhaust the range over time, and a leaked host port is refused to the next pod
// that asks for it. Anything else is a Warn, and so is everything of a network that none of the
// checked conflists names (another runtime's, or one whose conflist is gone).
//
// Its Fix removes them only through the plugins: DEL with the cached configuration, netns and
// arguments of every dead attachment, as its runtime would have; then GC (CNI 1.1) of every network
// that still has uncached leftovers, through libcni, with the network's live attachments as the valid
// ones. What neither reaches (a network with no conflist, a conflist older than 1.1.0, a veth whose pod
// is still held by a process) stays, reported.
func Leftovers(dirs inventory.Dirs) Check {
	l := leftovers{dirs: dirs}
	return Check{Name: LeftoversName, Run: l.run, Fix: l.fix}
}

type leftovers struct{ dirs inventory.Dirs }

func (l leftovers) inventory(n *Node) (inventory.Inventory, map[string]*libcni.NetworkConfigList) {
	d := l.dirs
	d.CacheDir = cmp.Or(n.CacheDir, d.CacheDir)
	lists := map[string]*libcni.NetworkConfigList{}
	for _, nw := range n.Networks {
		if nw.List != nil {
			d.Networks = append(d.Networks, nw.List)
			lists[nw.List.Name] = nw.List
		}
	}
	return inventory.List(d), lists
}

func (l leftovers) run(n *Node) []Finding {
	inv, lists := l.inventory(n)
	var fs []Finding
	for _, e := range inv.Errors {
		fs = append(fs, Finding{Status: Unknown, Found: "could not read " + e, Fix: "run netloom doctor as root"})
	}
	alive, blind := 0, 0
	cacheDir := l.cacheDir(n)
	hasCache := cacheExists(cacheDir)
	for _, a := range inv.Attachments {
		if a.State == inventory.Uncached && !hasCache {
			blind++
			continue
		}
		switch {
		case a.State == inventory.Alive:
			alive++
		case inFlight(a):
			fs = append(fs, Finding{Subject: a.Key().String(), Status: Warn,
				Found: fmt.Sprintf("leased %s ago, not in the runtime's cache: an ADD may be in progress", time.Since(a.LeasedAt).Round(time.Second)),
				Fix:   fmt.Sprintf("look again in %s; --fix leaves it alone until then", addGrace)})
		case a.State == inventory.Unknown:
			fs = append(fs, Finding{Subject: a.Key().String(), Status: Unknown, Found: "could not tell whether it is alive: " + a.Why, Fix: "run netloom doctor as root"})
		default:
			fs = append(fs, judgeGone(a, lists[a.Network]))
		}
	}
	if blind > 0 {
		fs = append(fs, Finding{Subject: cacheDir, Status: Unknown,
			Found: fmt.Sprintf("%d attachments are known from leases or records, but there is no runtime cache (%s/results) to tell the live from the gone", blind, cacheDir),
			Fix:   "pass the runtime's cache directory (--cache-dir)"})
	} else {
		fs = append(fs, strayLinks(inv, n.Networks)...)
	}
	if len(fs) == 0 {
		fs = append(fs, Finding{Status: OK, Found: fmt.Sprintf("%d attachments, all alive; nothing left by gone ones", alive)})
	}
	return fs
}

// judgeGone is the finding for an attachment that is not alive: what it holds, and how --fix removes it.
func judgeGone(a *inventory.Attachment, list *libcni.NetworkConfigList) Finding {
	var holds []string
	status := Warn
	if slices.Contains(a.Sources, inventory.SourceLease) {
		status = Fail
		addrs := make([]string, len(a.Addresses))
		for i, p := range a.Addresses {
			addrs[i] = p.Addr().String()
		}
		holds = append(holds, "leases "+strings.Join(addrs, ","))
	}
	for _, r := range a.Rules {
		if strings.HasSuffix(r, "portmap") {
			status = Fail
		}
		holds = append(holds, r+" rules")
	}
	for _, s := range a.Sources {
		if s == inventory.SourceFirewall || s == inventory.SourceBGP || s == inventory.SourceTuning {
			holds = append(holds, s+" record")
		}
	}
	if a.Cached != nil {
		holds = append(holds, "a runtime cache entry")
	}
	f := Finding{Subject: a.Key().String(), Status: status,
		Found: fmt.Sprintf("%s (%s); still holds %s", a.State, a.Why, strings.Join(holds, ", "))}
	switch {
	case a.Cached != nil:
		f.Fix = "netloom doctor --fix (DEL with the runtime's cached config)"
	case list == nil:
		// Not one of the networks checked (--conflist names another, or its runtime's conf dir is
		// elsewhere, or its conflist is gone): said, but not held against the checked ones.
		f.Status = Warn
		f.Found += "; no checked conflist names its network"
		f.Fix = fmt.Sprintf("if network %q is gone, put its conflist back in the conf dir and run netloom doctor --fix (GC)", a.Network)
	case !gcCapable(list):
		f.Fix = fmt.Sprintf("network %q has cniVersion %s (GC needs 1.1.0): the runtime must DEL %s", a.Network, list.CNIVersion, a.ContainerID)
	default:
		f.Fix = fmt.Sprintf("netloom doctor --fix (GC of network %q)", a.Network)
	}
	return f
}

func gcCapable(list *libcni.NetworkConfigList) bool {
	ok, _ := version.GreaterThanOrEqualTo(list.CNIVersion, "1.1.0")
	return ok
}

// strayLinks reports the veths on the bridges of the node's bridge networks that are the host end of
// no live attachment. A veth's peer always exists, so its pod's namespace does too: held by a process
// although its runtime forgot it, or attached by a runtime whose cache is elsewhere. Only a Warn.
func strayLinks(inv inventory.Inventory, networks []Network) []Finding {
	hostIfs := map[string]bool{}
	for _, a := range inv.Attachments {
		if live(a) && a.HostIf != "" {
			hostIfs[a.HostIf] = true
		}
	}
	var fs []Finding
	seen := map[string]bool{}
	for _, nw := range networks {
		if nw.List == nil {
			continue
		}
		for _, br := range bridgesOf(nw.List) {
			if seen[br] {
				continue
			}
			seen[br] = true
			ports, err := bridgeVeths(br)
			if err != nil {
				if !errors.Is(err, link.ErrNotFound) {
					fs = append(fs, Finding{Subject: "bridge " + br, Status: Unknown, Found: err.Error()})
				}
				continue
			}
			for _, p := range ports {
				if !hostIfs[p] {
					fs = append(fs, Finding{Subject: fmt.Sprintf("%s: veth %s on %s", nw.List.Name, p, br), Status: Warn,
						Found: "the host end of no live attachment in the runtime's cache: a pod its runtime forgot, still held by a process",
						Fix:   fmt.Sprintf("find the process holding its peer's namespace (ip link show %s shows the link-netnsid) and stop its container; its runtime's DEL removes the veth", p)})
				}
			}
		}
	}
	return fs
}

// bridgesOf returns the bridges the list's bridge plugins attach to ("cni0" when one names none).
func bridgesOf(list *libcni.NetworkConfigList) []string {
	var out []string
	for _, p := range list.Plugins {
		if p.Network.Type != "bridge" {
			continue
		}
		var c struct {
			Bridge string `json:"bridge"`
		}
		_ = json.Unmarshal(p.Bytes, &c)
		out = append(out, cmp.Or(c.Bridge, "cni0"))
	}
	return out
}

// bridgeVeths lists the names of the veths enslaved to bridge br in the calling thread's namespace.
func bridgeVeths(br string) ([]string, error) {
	l, err := link.ByName(br)
	if err != nil {
		return nil, err
	}
	ports, err := link.Enslaved(l)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ports {
		if _, ok := p.(*netlink.Veth); ok {
			out = append(out, p.Attrs().Name)
		}
	}
	return out, nil
}

// fix removes what gone attachments left, through the plugins' DEL and GC only.
func (l leftovers) fix(n *Node) ([]string, error) {
	inv, lists := l.inventory(n)
	path := n.BinDirs
	if len(path) == 0 {
		path = []string{defaultBinDir}
	}
	cacheDir := l.cacheDir(n)
	var did []string
	var errs []error
	gcNets := map[string]bool{}
	for _, a := range inv.Attachments {
		switch {
		case live(a):
		case a.Cached != nil:
			ctx, cancel := context.WithTimeout(context.Background(), fixTimeout)
			err := del(ctx, a, path, cacheDir)
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			did = append(did, fmt.Sprintf("DEL %s with the runtime's cached config", a.Key()))
		case lists[a.Network] != nil:
			gcNets[a.Network] = true
		}
		// An uncached attachment of a network no checked conflist names is not this run's to GC: its
		// finding says so.
	}
	if len(gcNets) > 0 && (!cacheExists(cacheDir) || len(inv.Errors) > 0) {
		// GC removes everything of a network that valid does not list: with the runtime's cache
		// missing or unreadable, the live pods would not be listed.
		errs = append(errs, fmt.Errorf("no GC of %s: the runtime cache %s/results is missing, or a source could not be read (%s)",
			strings.Join(sortedKeys(gcNets), ", "), cacheDir, strings.Join(inv.Errors, "; ")))
		gcNets = nil
	}
	cni := libcni.NewCNIConfigWithCacheDir(path, cacheDir, nil)
	for _, name := range sortedKeys(gcNets) {
		list := lists[name]
		if !gcCapable(list) {
			errs = append(errs, fmt.Errorf("network %q: cniVersion %s has no GC (1.1.0 and later)", name, list.CNIVersion))
			continue
		}
		var valid []types.GCAttachment
		for _, a := range inv.Network(name) {
			if live(a) {
				valid = append(valid, types.GCAttachment{ContainerID: a.ContainerID, IfName: a.IfName})
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), fixTimeout)
		err := cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("GC of network %q: %w", name, err))
			continue
		}
		did = append(did, fmt.Sprintf("GC of network %q keeping its %d live attachments", name, len(valid)))
	}
	return did, errors.Join(errs...)
}

// del runs the DEL of a's chain with the configuration, netns and arguments the runtime cached, as the
// runtime would: the plugins remove what they made. pluginPath is where the plugins are.
func del(ctx context.Context, a *inventory.Attachment, pluginPath []string, cacheDir string) error {
	if a.Cached == nil {
		return fmt.Errorf("%s: no cached configuration to DEL with", a.Key())
	}
	list, err := cniconf.ListFromBytes(a.Cached.Config)
	if err != nil {
		return fmt.Errorf("%s: cached configuration: %w", a.Key(), err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(pluginPath, cmp.Or(cacheDir, libcni.CacheDir), nil)
	rt := &libcni.RuntimeConf{ContainerID: a.ContainerID, NetNS: a.NetNS, IfName: a.IfName,
		Args: a.Cached.CniArgs, CapabilityArgs: a.Cached.CapabilityArgs}
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("DEL %s: %w", a.Key(), err)
	}
	return nil
}

func (l leftovers) cacheDir(n *Node) string {
	return cmp.Or(n.CacheDir, l.dirs.CacheDir, libcni.CacheDir)
}

// cacheExists says whether dir is a runtime's result cache: libcni creates results/ at the first ADD
// and never removes it.
func cacheExists(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "results"))
	return err == nil && st.IsDir()
}

// live says whether a must be kept: alive, not known to be gone, or maybe being added.
func live(a *inventory.Attachment) bool {
	return a.State == inventory.Alive || a.State == inventory.Unknown || inFlight(a)
}

// inFlight says whether a is uncached with a lease younger than addGrace.
func inFlight(a *inventory.Attachment) bool {
	return a.State == inventory.Uncached && !a.LeasedAt.IsZero() && time.Since(a.LeasedAt) < addGrace
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
