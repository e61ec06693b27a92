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
	"strings"

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
}

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

func (c *Config) validate() error {
	b := &c.BGP
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
		if n.RouteReflectorClient && n.ASN != b.ASN {
			return fmt.Errorf("%s.routeReflectorClient: a reflector's clients are iBGP neighbours, but asn %d is not this node's %d", f, n.ASN, b.ASN)
		}
		if len(n.Password) > 80 {
			return fmt.Errorf("%s.password: longer than the kernel's 80-byte TCP MD5 key limit", f)
		}
	}
	for i, s := range b.Originate {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Masked() != p {
			return fmt.Errorf("bgp.originate[%d]: %q is not a CIDR with host bits zero, e.g. \"10.244.1.0/24\"", i, s)
		}
		c.originate = append(c.originate, p)
	}
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
