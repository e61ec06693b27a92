// Package cluster is netloomd's Kubernetes node agent: it watches the cluster's Node objects, writes
// this node's CNI conflist from its spec.podCIDRs, and keeps the kernel's routes to every other node's
// pod CIDRs current, one peer at a time as Nodes change, with a full resync on start and on a timer.
package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Modes the agent runs a node's pod network in.
const (
	// ModeRouted: pods on a bridge, a route to each peer's pod CIDRs via its InternalIP; the nodes
	// share one L2 network (kindnet, flannel host-gw).
	ModeRouted = "routed"
	// ModeVXLAN: pods behind the vxlan-overlay plugin, every peer reached through the VXLAN tunnel (the
	// nodes may be on different networks); the agent writes the peer list and reconciles the tunnel's
	// entries as `netloom overlay sync` does.
	ModeVXLAN = "vxlan"
)

// Defaults of the configuration file's keys.
const (
	DefaultCNIConfDir     = "/etc/cni/net.d"
	DefaultConflistName   = "10-netloom.conflist"
	DefaultListen         = ":9402"
	DefaultResyncInterval = time.Minute
	DefaultBridge         = "netloom0"
	DefaultNetworkName    = "netloom"
	DefaultStateDir       = "/run/netloom"
	DefaultVNI            = 1
)

// Config is the agent's configuration file (JSON; the DaemonSet mounts it from a ConfigMap).
type Config struct {
	Mode string `json:"mode"`
	// ClusterCIDR holds every node's pod CIDR (comma-separated for dual-stack); peers' CIDRs outside
	// it are refused.
	ClusterCIDR    string `json:"clusterCIDR,omitempty"`
	CNIConfDir     string `json:"cniConfDir,omitempty"`
	ConflistName   string `json:"conflistName,omitempty"`
	Listen         string `json:"listen,omitempty"`         // /healthz, /readyz, /metrics; "" or "off": none
	ResyncInterval string `json:"resyncInterval,omitempty"` // Go duration, default 1m
	// Bridge is the pods' bridge in routed mode; MTU the pods' MTU (0: the kernel's default).
	Bridge string `json:"bridge,omitempty"`
	MTU    int    `json:"mtu,omitempty"`
	// NetworkName is the conflist's "name" (runtimes key their cached results by it).
	NetworkName string `json:"networkName,omitempty"`
	// IPAMDataDir is host-local's dataDir, where the pods' leases are kept ("": host-local's default,
	// /var/lib/cni/networks).
	IPAMDataDir string `json:"ipamDataDir,omitempty"`
	LogLevel    string `json:"logLevel,omitempty"` // debug, info (default), warn, error
	// StateDir holds what the agent writes besides the conflist (vxlan: the peers file).
	StateDir string `json:"stateDir,omitempty"`
	// VNI is the VXLAN network identifier in vxlan mode.
	VNI int `json:"vni,omitempty"`
	// CNIVersion is the conflist's cniVersion; "" picks by the node's runtime (CNIVersionFor).
	CNIVersion string `json:"cniVersion,omitempty"`
	// Masquerade: pods' traffic leaving clusterCIDR leaves with the node's address (routed mode: the
	// agent's nftables table; vxlan mode: the overlay's ipMasq). Unset: on when clusterCIDR is set.
	Masquerade *bool `json:"masquerade,omitempty"`

	clusterCIDRs []netip.Prefix
	resync       time.Duration
}

// LoadConfig reads and validates the file at path.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(raw)
}

// ParseConfig decodes raw strictly (an unknown key is an error naming it), fills in the defaults and
// validates every key.
func ParseConfig(raw []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("not a valid configuration: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate() error {
	switch c.Mode {
	case ModeRouted, ModeVXLAN:
	case "":
		return fmt.Errorf("mode: missing; set it to %q (nodes on one L2 network) or %q", ModeRouted, ModeVXLAN)
	default:
		return fmt.Errorf("mode: %q is not a mode this netloomd runs; use %q (nodes on one L2 network) or %q", c.Mode, ModeRouted, ModeVXLAN)
	}
	for s := range strings.SplitSeq(c.ClusterCIDR, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil || p != p.Masked() {
			return fmt.Errorf("clusterCIDR: %q is not a network in CIDR form (e.g. 10.244.0.0/16)", s)
		}
		c.clusterCIDRs = append(c.clusterCIDRs, p)
	}
	if err := c.validateMasquerade(); err != nil {
		return err
	}
	if c.CNIConfDir == "" {
		c.CNIConfDir = DefaultCNIConfDir
	}
	if !filepath.IsAbs(c.CNIConfDir) {
		return fmt.Errorf("cniConfDir: %q is not an absolute path", c.CNIConfDir)
	}
	if c.ConflistName == "" {
		c.ConflistName = DefaultConflistName
	}
	if strings.ContainsRune(c.ConflistName, '/') || !strings.HasSuffix(c.ConflistName, ".conflist") {
		return fmt.Errorf("conflistName: %q must be a file name ending in .conflist (runtimes read only .conf, .conflist and .json, and a .conflist holds a chain)", c.ConflistName)
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	c.resync = DefaultResyncInterval
	if c.ResyncInterval != "" {
		d, err := time.ParseDuration(c.ResyncInterval)
		if err != nil || d < time.Second {
			return fmt.Errorf("resyncInterval: %q is not a duration of at least 1s (e.g. \"60s\")", c.ResyncInterval)
		}
		c.resync = d
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if len(c.Bridge) > 15 {
		return fmt.Errorf("bridge: %q is longer than the kernel's 15 characters for an interface name", c.Bridge)
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535) {
		return fmt.Errorf("mtu: %d is outside 576-65535; leave it out for the kernel's default", c.MTU)
	}
	if c.NetworkName == "" {
		c.NetworkName = DefaultNetworkName
	}
	if c.IPAMDataDir != "" && !filepath.IsAbs(c.IPAMDataDir) {
		return fmt.Errorf("ipamDataDir: %q is not an absolute path", c.IPAMDataDir)
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("stateDir: %q is not an absolute path", c.StateDir)
	}
	if c.VNI == 0 {
		c.VNI = DefaultVNI
	}
	if c.VNI < 1 || c.VNI > 1<<24-1 {
		return fmt.Errorf("vni: %d is outside 1-16777215", c.VNI)
	}
	switch c.CNIVersion {
	case "", "0.4.0", "1.0.0", "1.1.0":
	default:
		return fmt.Errorf("cniVersion: %q is not one netloom writes; use 1.1.0, 1.0.0 or 0.4.0, or leave it out to pick by the node's runtime", c.CNIVersion)
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("logLevel: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	return nil
}

// validateMasquerade refuses a masquerade asked for that cannot be done: without a cluster CIDR nothing
// tells pod-to-pod traffic (which keeps its source) from traffic leaving the cluster.
func (c *Config) validateMasquerade() error {
	if c.Masquerade == nil || !*c.Masquerade {
		return nil
	}
	if len(c.clusterCIDRs) == 0 {
		return errors.New("masquerade: true needs clusterCIDR, the pod network whose traffic keeps its source; set clusterCIDR (e.g. \"10.244.0.0/16\"), or leave masquerade out")
	}
	if _, ok := c.clusterCIDR4(); !ok && c.Mode == ModeVXLAN {
		return fmt.Errorf("masquerade: true in mode %q needs an IPv4 clusterCIDR (the overlay carries IPv4 pods only), and clusterCIDR is %q", ModeVXLAN, c.ClusterCIDR)
	}
	return nil
}

// Masquerades tells whether pods' traffic leaving the cluster CIDR is masqueraded: the "masquerade" key,
// on by default when there is a cluster CIDR.
func (c *Config) Masquerades() bool {
	return len(c.clusterCIDRs) > 0 && (c.Masquerade == nil || *c.Masquerade)
}

// ConflistPath is where the node's conflist is written.
func (c *Config) ConflistPath() string { return filepath.Join(c.CNIConfDir, c.ConflistName) }

// PeersFile is where vxlan mode keeps the peer list the tunnel is reconciled from.
func (c *Config) PeersFile() string { return filepath.Join(c.StateDir, "peers-"+c.NetworkName+".json") }

// clusterCIDR4 is the IPv4 cluster CIDR, if one is set.
func (c *Config) clusterCIDR4() (netip.Prefix, bool) {
	for _, p := range c.clusterCIDRs {
		if p.Addr().Is4() {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Resync is the full resync's period.
func (c *Config) Resync() time.Duration { return c.resync }

// InCluster reports whether p lies inside the cluster CIDR of its family (always, when none is set).
func (c *Config) InCluster(p netip.Prefix) bool {
	seen := false
	for _, cc := range c.clusterCIDRs {
		if cc.Addr().Is4() != p.Addr().Is4() {
			continue
		}
		seen = true
		if cc.Bits() <= p.Bits() && cc.Contains(p.Addr()) {
			return true
		}
	}
	return !seen
}
