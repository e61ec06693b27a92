// Package daemon is netloomd: an embedded GoBGP speaker that originates this node's pod CIDRs, serves
// the GoBGP API on a unix socket for bgp-route, installs the best paths its peers send into the kernel
// (route protocol 79, nothing else touched), re-announces the pods' paths bgp-route recorded after a
// restart, and exposes Prometheus metrics and a health endpoint.
package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/netloom/netloom/pkg/bgp"
)

// Config is netloomd's configuration file (JSON).
type Config struct {
	BGP      BGPConfig `json:"bgp"`
	API      APIConfig `json:"api"`
	Metrics  Metrics   `json:"metrics"`
	StateDir string    `json:"stateDir,omitempty"` // bgp-route's records, re-announced at start
	// InstallRoutes puts the best paths learned from peers into the kernel's main table (default true).
	InstallRoutes *bool  `json:"installRoutes,omitempty"`
	LogLevel      string `json:"logLevel,omitempty"` // debug, info (default), warn, error
	// AdoptFor is the least time after start during which kernel routes a previous process left are
	// kept without a path (see reconcile); the neighbours' longest hold time when that is longer. Set
	// by a program embedding the speaker whose neighbours come later (the cluster agent).
	AdoptFor time.Duration `json:"-"`

	originate []netip.Prefix
}

// BGPConfig is the speaker itself.
type BGPConfig struct {
	ASN             uint32     `json:"asn"`
	RouterID        string     `json:"routerID"`
	ListenAddresses []string   `json:"listenAddresses,omitempty"`
	ListenPort      int32      `json:"listenPort,omitempty"` // default 179; -1: do not listen
	Neighbors       []Neighbor `json:"neighbors"`
	Originate       []string   `json:"originate,omitempty"` // this node's pod CIDRs
}

// Neighbor is one BGP peer.
type Neighbor struct {
	Address      string `json:"address"`
	ASN          uint32 `json:"asn"`
	Password     string `json:"password,omitempty"` // TCP MD5 signature
	EBGPMultihop uint32 `json:"ebgpMultihop,omitempty"`
	HoldTime     uint64 `json:"holdTime,omitempty"` // seconds, default 90; keepalive is a third of it
	Passive      bool   `json:"passive,omitempty"`
	// RouteReflectorClient makes this (iBGP) neighbour a client of this speaker acting as a reflector.
	RouteReflectorClient bool `json:"routeReflectorClient,omitempty"`
	// GracefulRestart is the restart time in seconds advertised and honoured (RFC 4724): a session
	// that drops without a Cease keeps its routes, marked stale, that long. 0: off.
	GracefulRestart uint32 `json:"gracefulRestart,omitempty"`
	// AllowOwnAS accepts paths whose AS path holds this node's AS up to that many times (nodes of one
	// AS peering only with routers, which send the other nodes' paths back).
	AllowOwnAS uint32 `json:"allowOwnAS,omitempty"`
	// AddressFamilies the session carries: "ipv4", "ipv6" (default both).
	AddressFamilies []string `json:"addressFamilies,omitempty"`
}

// Address families a session can carry.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// APIConfig is where the GoBGP API is served.
type APIConfig struct {
	Socket string `json:"socket,omitempty"` // default bgp.DefaultSocket; created with mode 0600
}

// Metrics is the HTTP endpoint for /metrics and /healthz.
type Metrics struct {
	Listen string `json:"listen,omitempty"` // e.g. "127.0.0.1:9653"; empty: none
}

const (
	defaultListenPort = 179
	defaultHoldTime   = 90
	minHoldTime       = 3 // RFC 4271: 0 or at least 3
)

// LoadConfig reads and validates the file at path; the error names the key and what would be valid.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(data)
}

// ParseConfig decodes and validates a configuration. Unknown keys are errors: a typo in a daemon's
// config must not be silently ignored.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("config: %s: want a %s, got %s", te.Field, te.Type, te.Value)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("config: more data after the JSON object; the file holds one object")
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// validate checks the keys and fills in the defaults, one group of keys after the other; the first
// error is the one reported.
func (c *Config) validate() error {
	for _, check := range []func() error{c.BGP.validateSpeaker, c.BGP.validateNeighbors, c.validateOriginate, c.validateLocal} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// validateSpeaker checks the speaker's own keys: AS number, router ID, where it listens.
func (b *BGPConfig) validateSpeaker() error {
	if b.ASN == 0 {
		return errors.New("bgp.asn: missing; give this node's AS number (1-4294967295), e.g. 64512")
	}
	rid, err := netip.ParseAddr(b.RouterID)
	if err != nil || !rid.Is4() {
		return fmt.Errorf("bgp.routerID: %q is not an IPv4 address; BGP router IDs are written as one, usually the node's address", b.RouterID)
	}
	for i, a := range b.ListenAddresses {
		if ip, err := netip.ParseAddr(a); err != nil || ip.Zone() != "" {
			return fmt.Errorf("bgp.listenAddresses[%d]: %q is not an IP address (without a zone)", i, a)
		}
	}
	switch {
	case b.ListenPort == 0:
		b.ListenPort = defaultListenPort
	case b.ListenPort < -1 || b.ListenPort > 65535:
		return fmt.Errorf("bgp.listenPort: %d is not a port; want 1-65535, or -1 to accept no connections", b.ListenPort)
	}
	return nil
}

// validateNeighbors checks each neighbour, and that no peer is listed twice.
func (b *BGPConfig) validateNeighbors() error {
	seen := map[netip.Addr]int{}
	for i := range b.Neighbors {
		n := &b.Neighbors[i]
		f := fmt.Sprintf("bgp.neighbors[%d]", i)
		a, err := netip.ParseAddr(n.Address)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("%s.address: %q is not an IP address", f, n.Address)
		}
		a = a.Unmap() // ::ffff:10.0.0.2 is 10.0.0.2: the same peer
		if j, dup := seen[a]; dup {
			return fmt.Errorf("%s.address: %s is also neighbors[%d]", f, a, j)
		}
		seen[a] = i
		if err := n.validate(f, b.ASN); err != nil {
			return err
		}
	}
	return nil
}

// validate checks the neighbour's keys but its address; f names it in errors, localASN is this
// speaker's AS number.
func (n *Neighbor) validate(f string, localASN uint32) error {
	if n.ASN == 0 {
		return fmt.Errorf("%s.asn: missing; give the neighbour's AS number", f)
	}
	if n.HoldTime == 0 {
		n.HoldTime = defaultHoldTime
	} else if n.HoldTime < minHoldTime || n.HoldTime > 65535 {
		return fmt.Errorf("%s.holdTime: %d seconds is not allowed; BGP hold times are %d-65535", f, n.HoldTime, minHoldTime)
	}
	if n.EBGPMultihop > 255 {
		return fmt.Errorf("%s.ebgpMultihop: %d is not a TTL; want 1-255 (0: directly connected)", f, n.EBGPMultihop)
	}
	if n.RouteReflectorClient && n.ASN != localASN {
		return fmt.Errorf("%s.routeReflectorClient: a reflector's clients are iBGP neighbours, but asn %d is not this node's %d", f, n.ASN, localASN)
	}
	if len(n.Password) > 80 {
		return fmt.Errorf("%s.password: longer than the kernel's 80-byte TCP MD5 key limit", f)
	}
	if n.GracefulRestart > 4095 {
		return fmt.Errorf("%s.gracefulRestart: %d seconds is more than the 4095 the capability carries", f, n.GracefulRestart)
	}
	if n.AllowOwnAS > 10 {
		return fmt.Errorf("%s.allowOwnAS: %d; want 0-10 occurrences of this node's AS", f, n.AllowOwnAS)
	}
	for i, fam := range n.AddressFamilies {
		if fam != FamilyIPv4 && fam != FamilyIPv6 {
			return fmt.Errorf("%s.addressFamilies[%d]: %q is not %q or %q", f, i, fam, FamilyIPv4, FamilyIPv6)
		}
	}
	return nil
}

// ValidateNeighbors checks neighbours as netloomd's own configuration does, for a speaker of AS
// localASN; field is the key that holds them ("bgp.neighbors"), used in the errors. Defaults are
// filled in.
func ValidateNeighbors(field string, localASN uint32, ns []Neighbor) error {
	b := BGPConfig{ASN: localASN, Neighbors: ns}
	if err := b.validateNeighbors(); err != nil {
		return errors.New(strings.Replace(err.Error(), "bgp.neighbors", field, 1))
	}
	return nil
}

// carries tells whether the session carries the family of prefix p.
func (n *Neighbor) carries(p netip.Prefix) bool {
	if len(n.AddressFamilies) == 0 {
		return true
	}
	want := FamilyIPv6
	if p.Addr().Is4() {
		want = FamilyIPv4
	}
	return slices.Contains(n.AddressFamilies, want)
}

// validateOriginate parses the pod CIDRs this node announces.
func (c *Config) validateOriginate() error {
	for i, s := range c.BGP.Originate {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Masked() != p {
			return fmt.Errorf("bgp.originate[%d]: %q is not a CIDR with host bits zero, e.g. \"10.244.1.0/24\"", i, s)
		}
		c.originate = append(c.originate, p)
	}
	return nil
}

// validateLocal checks the daemon's own keys: API socket, state directory, log level.
func (c *Config) validateLocal() error {
	if c.API.Socket == "" {
		c.API.Socket = bgp.DefaultSocket
	}
	if !strings.HasPrefix(c.API.Socket, "/") {
		return fmt.Errorf("api.socket: %q is not an absolute path", c.API.Socket)
	}
	if c.StateDir == "" {
		c.StateDir = bgp.DefaultStateDir
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("logLevel: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	return nil
}

// installRoutes tells whether learned paths go into the kernel.
func (c *Config) installRoutes() bool { return c.InstallRoutes == nil || *c.InstallRoutes }
