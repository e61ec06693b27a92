// Package inventory lists the attachments of a node (what `netloom ls` shows and the leftover check of
// `netloom doctor` judges): every pod interface a runtime attached through CNI, from the three places
// that remember one:
//
//   - the runtime's libcni result cache (<cacheDir>/results/<network>-<containerID>-<ifname>): the
//     network's configuration, the result, the netns and the capability arguments (hostPorts);
//   - host-local's leases (<dataDir>/<network>/<address>, holding the container ID and interface);
//   - netloom's own records: the firewall plugin's (pkg/firewall/forward), bgp-route's (pkg/bgp), tuning's
//     saved settings, and the masquerade and portmap rules, whose comments name their attachment.
//
// An attachment is alive when its netns exists and holds its interface. One that the leases or records
// know but the cache does not is listed too (Uncached): its runtime forgot it, or never used libcni.
//
// Everything here only reads. The kernel is read in the calling thread's network namespace.
package inventory

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// State is whether an attachment's pod is still there.
type State string

const (
	// Alive: the netns exists and holds the interface.
	Alive State = "alive"
	// Dead: the runtime's cache has it, but its netns or its interface is gone.
	Dead State = "dead"
	// Uncached: only leases or records know it; no runtime's cache does, so nothing tells where its pod is.
	Uncached State = "uncached"
	// Unknown: its netns could not be looked into (not root?); treat it as alive.
	Unknown State = "unknown"
)

// Source names where an attachment was seen.
const (
	SourceCache    = "cache"
	SourceLease    = "lease"
	SourceFirewall = "firewall"
	SourceBGP      = "bgp"
	SourceTuning   = "tuning"
	SourceRules    = "rules"
)

// HostPort is one of the attachment's port mappings, as the runtime passed it (runtimeConfig.portMappings).
type HostPort struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

func (h HostPort) String() string {
	s := fmt.Sprintf("%d->%d/%s", h.HostPort, h.ContainerPort, cmp.Or(strings.ToLower(h.Protocol), "tcp"))
	if h.HostIP != "" {
		s = h.HostIP + ":" + s
	}
	return s
}

// Attachment is one pod interface on one network.
type Attachment struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	// IfName is empty when only a record that names no interface knows the attachment (an iptables
	// rule's comment, a legacy lease).
	IfName    string         `json:"ifName"`
	Addresses []netip.Prefix `json:"addresses,omitempty"`
	HostPorts []HostPort     `json:"hostPorts,omitempty"`
	// Plugins are the types of the chain that made it, in order (from the cached configuration).
	Plugins []string `json:"plugins,omitempty"`
	NetNS   string   `json:"netns,omitempty"`
	// HostIf is the host side of the pod's link when the result names one (a veth on a bridge).
	HostIf string `json:"hostIf,omitempty"`
	State  State  `json:"state"`
	// Why says what is gone, when State is not Alive.
	Why string `json:"why,omitempty"`
	// Sources list where it was seen (SourceCache, SourceLease, ...).
	Sources []string `json:"sources"`
	// LeasedAt is when its newest lease was written (zero without lease): an uncached attachment leased
	// moments ago may be an ADD whose runtime has not cached its result yet.
	LeasedAt time.Time `json:"leasedAt,omitzero"`
	// Rules describe the masquerade and portmap rules that name it, e.g. "iptables nat chain CNI-DN-...".
	Rules []string `json:"rules,omitempty"`

	// Cached is the runtime's cache entry; nil when the cache does not have it.
	Cached *libcni.NetworkAttachment `json:"-"`
}

// Key identifies an attachment.
type Key struct{ Network, ContainerID, IfName string }

// Key returns a's key.
func (a *Attachment) Key() Key { return Key{a.Network, a.ContainerID, a.IfName} }

func (a *Attachment) seen(source string) {
	if !slices.Contains(a.Sources, source) {
		a.Sources = append(a.Sources, source)
	}
}

func (a *Attachment) addAddr(p netip.Prefix) {
	for _, q := range a.Addresses {
		if q.Addr() == p.Addr() {
			return
		}
	}
	a.Addresses = append(a.Addresses, p)
}

// Inventory is every attachment found, sorted by network, container ID and interface, and what could not
// be read (a source that failed does not hide the others).
type Inventory struct {
	Attachments []*Attachment `json:"attachments"`
	Errors      []string      `json:"errors,omitempty"`
}

// builder collects attachments by key while the sources are read.
type builder struct {
	byKey map[Key]*Attachment
	errs  []string
}

func (b *builder) get(k Key) *Attachment {
	if a, ok := b.byKey[k]; ok {
		return a
	}
	a := &Attachment{Network: k.Network, ContainerID: k.ContainerID, IfName: k.IfName}
	b.byKey[k] = a
	return a
}

// find returns the attachment of network and container with ifName, or, when ifName is empty (a
// record that names no interface), the container's attachments on network; a new one when none is known.
func (b *builder) find(network, containerID, ifName string) []*Attachment {
	if ifName != "" {
		return []*Attachment{b.get(Key{network, containerID, ifName})}
	}
	var out []*Attachment
	for k, a := range b.byKey {
		if k.Network == network && k.ContainerID == containerID {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = append(out, b.get(Key{network, containerID, ""}))
	}
	return out
}

func (b *builder) fail(format string, args ...any) {
	b.errs = append(b.errs, fmt.Sprintf(format, args...))
}

func (b *builder) inventory() Inventory {
	inv := Inventory{Errors: b.errs}
	for _, a := range b.byKey {
		inv.Attachments = append(inv.Attachments, a)
	}
	slices.SortFunc(inv.Attachments, func(x, y *Attachment) int {
		return cmp.Or(cmp.Compare(x.Network, y.Network), cmp.Compare(x.ContainerID, y.ContainerID), cmp.Compare(x.IfName, y.IfName))
	})
	return inv
}

// Network returns the attachments of one network.
func (inv Inventory) Network(name string) []*Attachment {
	var out []*Attachment
	for _, a := range inv.Attachments {
		if a.Network == name {
			out = append(out, a)
		}
	}
	return out
}

// hostPortsOf reads runtimeConfig.portMappings out of a cache entry's capability arguments.
func hostPortsOf(capArgs map[string]any) []HostPort {
	raw, ok := capArgs["portMappings"]
	if !ok {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil
	}
	var out []HostPort
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}
