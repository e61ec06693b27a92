// Package sysctl reads and writes kernel parameters under /proc/sys, or the same values over rtnetlink
// where that costs less (rtnl.go). It is the only place netloom touches /proc/sys. Keys use '/' as
// separator ("net/ipv4/conf/eth0.100/arp_notify") so interface names with dots stay unambiguous.
// /proc/sys/net resolves against the network namespace of the calling thread, so call these inside the
// namespace whose parameters you mean.
package sysctl

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

const root = "/proc/sys"

func path(key string) string {
	return filepath.Join(root, filepath.Clean("/"+strings.TrimPrefix(key, "/")))
}

// Get returns the value of key without the trailing newline. The keys rtnetlink reports are read
// that way (see rtnl.go): a link's IPv4 and IPv6 per-device settings and the forwarding switches.
func Get(key string) (string, error) {
	if k, ok := parseRtnlKey(key); ok {
		if v, err := getRtnl(k); err == nil {
			return v, nil
		}
	}
	b, err := os.ReadFile(path(key))
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", key, err)
	}
	return string(bytes.TrimSpace(b)), nil
}

// Set writes value to key; a few IPv4 per-device settings over rtnetlink (see rtnl.go).
func Set(key, value string) error {
	if k, ok := parseRtnlKey(key); ok && setRtnl(k, value) == nil {
		return nil
	}
	if err := os.WriteFile(path(key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// Ensure writes value to key unless it already holds it. Writes to some keys (forwarding, disable_ipv6)
// have side effects in the kernel even when the value does not change, so the read comes first.
func Ensure(key, value string) error {
	if cur, err := Get(key); err == nil && cur == value {
		return nil
	}
	return Set(key, value)
}

// Interface-scoped keys, so callers do not build paths by hand.

// IPv4Conf returns the key of an IPv4 per-interface parameter.
func IPv4Conf(ifname, param string) string { return "net/ipv4/conf/" + ifname + "/" + param }

// IPv6Conf returns the key of an IPv6 per-interface parameter.
func IPv6Conf(ifname, param string) string { return "net/ipv6/conf/" + ifname + "/" + param }

// EnableForwardingFor turns on routing for a's family in the current namespace.
func EnableForwardingFor(a netip.Addr) error {
	if a.Is6() {
		return EnableForwarding(6)
	}
	return EnableForwarding(4)
}

// EnableForwarding turns on routing for one family in the current namespace (family 4 or 6).
func EnableForwarding(family int) error {
	if family == 6 {
		return Ensure("net/ipv6/conf/all/forwarding", "1")
	}
	return Ensure("net/ipv4/ip_forward", "1")
}
