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
	"text/template"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/netloom/netloom/pkg/bgp/daemon"
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
	// ModeIPIP: pods behind the ipip-overlay plugin, every peer's pod CIDR routed through one IP-in-IP
	// device (Calico's IPIP); with ipipMode crossSubnet, peers on this node's subnet get a plain route.
	ModeIPIP = "ipip"
	// ModeBGP: pods on a bridge as in routed mode, the routes to the other nodes' pod CIDRs learned
	// over BGP from netloomd's speaker, run by the agent: a session with every node of this node's
	// network (the node mesh) and with configured routers or route reflectors (bgp.neighbors).
	ModeBGP = "bgp"
)

// modesHelp names the modes for error messages.
const modesHelp = `"routed" (nodes on one L2 network), "vxlan" or "ipip" (nodes anywhere, tunnelled) or "bgp" (routes over BGP, with routers between networks)`

// IP-in-IP encapsulation choices of ipip mode (the ipip-overlay plugin's "mode").
const (
	IPIPAlways      = "always"
	IPIPCrossSubnet = "crossSubnet"
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
	// IPIPMode is ipip mode's encapsulation: "always" (default) or "crossSubnet" (only towards peers
	// outside this node's subnet).
	IPIPMode string `json:"ipipMode,omitempty"`
	// CNIVersion is the conflist's cniVersion; "" picks by the node's runtime (CNIVersionFor).
	CNIVersion string `json:"cniVersion,omitempty"`
	// ConflistTemplate is the path of a Go template (text/template, TemplateData) the conflist is
	// written from instead of the mode's own; the DaemonSet mounts it from the ConfigMap.
	ConflistTemplate string `json:"conflistTemplate,omitempty"`
	// BGP is bgp mode's speaker.
	BGP *BGPConfig `json:"bgp,omitempty"`
	// Masquerade: pods' traffic leaving clusterCIDR leaves with the node's address (routed mode: the
	// agent's nftables table; vxlan mode: the overlay's ipMasq). Unset: on when clusterCIDR is set.
	Masquerade *bool `json:"masquerade,omitempty"`

	clusterCIDRs []netip.Prefix
	resync       time.Duration
	tmpl         *template.Template
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
	case ModeRouted, ModeVXLAN, ModeIPIP, ModeBGP:
	case "":
		return fmt.Errorf("mode: missing; set it to %s", modesHelp)
	default:
		return fmt.Errorf("mode: %q is not a mode this netloomd runs; use %s", c.Mode, modesHelp)
	}
	if c.IPIPMode != "" && c.Mode != ModeIPIP {
		return fmt.Errorf("ipipMode: set, but mode is %q; it applies to mode %q only", c.Mode, ModeIPIP)
	}
	if c.Mode == ModeIPIP {
		switch {
		case c.IPIPMode == "" || strings.EqualFold(c.IPIPMode, IPIPAlways):
			c.IPIPMode = IPIPAlways
		case strings.EqualFold(c.IPIPMode, IPIPCrossSubnet):
			c.IPIPMode = IPIPCrossSubnet
		default:
			return fmt.Errorf("ipipMode: %q is not %q or %q", c.IPIPMode, IPIPAlways, IPIPCrossSubnet)
		}
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
	switch {
	case c.Mode == ModeBGP:
		if c.BGP == nil {
			c.BGP = &BGPConfig{}
		}
		if err := c.BGP.validate(c.StateDir); err != nil {
			return err
		}
	case c.BGP != nil:
		return fmt.Errorf("bgp: set, but mode is %q; it applies to mode %q only", c.Mode, ModeBGP)
	}
	if c.ConflistTemplate != "" {
		t, err := loadTemplate(c.ConflistTemplate)
		if err != nil {
			return err
		}
		c.tmpl = t
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

// BGP mode's defaults.
const (
	DefaultBGPASN          = 64512 // the first private AS number: every node in one AS, iBGP
	DefaultGracefulRestart = 120   // seconds peers keep a restarting node's routes
)

// BGPConfig is bgp mode's speaker: one AS for every node, an iBGP session with each node of this
// node's network unless nodeMesh is false, and sessions with the routers in neighbors.
type BGPConfig struct {
	ASN      uint32 `json:"asn,omitempty"`
	NodeMesh *bool  `json:"nodeMesh,omitempty"`
	// Neighbors are routers or route reflectors, each with the keys of netloomd's bgp.neighbors and a
	// nodeSelector (a label selector over this node's Node: "" selects every node).
	Neighbors  []BGPNeighbor `json:"neighbors,omitempty"`
	ListenPort int32         `json:"listenPort,omitempty"` // default 179
	HoldTime   uint64        `json:"holdTime,omitempty"`   // of the mesh sessions, seconds; default 90
	// GracefulRestart is the restart time (seconds) of every session, the mesh's and the routers'
	// that set none: peers keep this node's routes that long while its agent restarts. 0 turns it off.
	GracefulRestart *uint32 `json:"gracefulRestart,omitempty"`
	// APISocket is the speaker's GoBGP API, which the conflist's bgp-route uses; default
	// <stateDir>/netloomd.sock.
	APISocket string `json:"apiSocket,omitempty"`
}

// BGPNeighbor is one configured BGP neighbour of bgp mode (a router or route reflector).
type BGPNeighbor struct {
	daemon.Neighbor
	NodeSelector string `json:"nodeSelector,omitempty"`

	selector labels.Selector
}

func (b *BGPConfig) mesh() bool              { return b.NodeMesh == nil || *b.NodeMesh }
func (b *BGPConfig) gracefulRestart() uint32 { return *b.GracefulRestart }

// validate fills in bgp mode's defaults and checks every key.
func (b *BGPConfig) validate(stateDir string) error {
	if b.ASN == 0 {
		b.ASN = DefaultBGPASN
	}
	if b.GracefulRestart == nil {
		gr := uint32(DefaultGracefulRestart)
		b.GracefulRestart = &gr
	}
	if b.HoldTime == 0 {
		b.HoldTime = 90
	}
	if b.HoldTime < 3 || b.HoldTime > 65535 {
		return fmt.Errorf("bgp.holdTime: %d seconds is not allowed; BGP hold times are 3-65535", b.HoldTime)
	}
	if b.ListenPort < -1 || b.ListenPort > 65535 {
		return fmt.Errorf("bgp.listenPort: %d is not a port; want 1-65535, or -1 to accept no connections", b.ListenPort)
	}
	if b.APISocket == "" {
		b.APISocket = filepath.Join(stateDir, "netloomd.sock")
	}
	if !filepath.IsAbs(b.APISocket) {
		return fmt.Errorf("bgp.apiSocket: %q is not an absolute path", b.APISocket)
	}
	ns := make([]daemon.Neighbor, len(b.Neighbors))
	for i, r := range b.Neighbors {
		ns[i] = r.Neighbor
		if ns[i].GracefulRestart == 0 {
			ns[i].GracefulRestart = *b.GracefulRestart
		}
	}
	if err := daemon.ValidateNeighbors("bgp.neighbors", b.ASN, ns); err != nil {
		return err
	}
	for i := range b.Neighbors {
		r := &b.Neighbors[i]
		r.Neighbor = ns[i]
		sel, err := labels.Parse(r.NodeSelector)
		if err != nil {
			return fmt.Errorf("bgp.neighbors[%d].nodeSelector: %q is not a label selector (e.g. \"topology.kubernetes.io/zone=rack1\"): %v", i, r.NodeSelector, err)
		}
		r.selector = sel
	}
	if !b.mesh() && len(b.Neighbors) == 0 {
		return errors.New("bgp.nodeMesh: false with no bgp.neighbors leaves every node without peers; list the routers in bgp.neighbors or turn the mesh on")
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
	if _, ok := c.clusterCIDR4(); !ok && (c.Mode == ModeVXLAN || c.Mode == ModeIPIP) {
		return fmt.Errorf("masquerade: true in mode %q needs an IPv4 clusterCIDR (the overlay carries IPv4 pods only), and clusterCIDR is %q", c.Mode, c.ClusterCIDR)
	}
	return nil
}

// BGPSocket is where bgp mode's speaker serves the GoBGP API.
func (c *Config) BGPSocket() string { return c.BGP.APISocket }

// Masquerades tells whether pods' traffic leaving the cluster CIDR is masqueraded: the "masquerade" key,
// on by default when there is a cluster CIDR.
func (c *Config) Masquerades() bool {
	return len(c.clusterCIDRs) > 0 && (c.Masquerade == nil || *c.Masquerade)
}

// ConflistPath is where the node's conflist is written.
func (c *Config) ConflistPath() string { return filepath.Join(c.CNIConfDir, c.ConflistName) }

// PeersFile is where the tunnelled modes keep the peer list the tunnel is reconciled from.
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
