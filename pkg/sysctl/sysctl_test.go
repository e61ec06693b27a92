package sysctl

import "testing"

func TestPath(t *testing.T) {
	for key, want := range map[string]string{
		"net/ipv4/ip_forward":          "/proc/sys/net/ipv4/ip_forward",
		"/net/ipv6/conf/eth0.100/x":    "/proc/sys/net/ipv6/conf/eth0.100/x",
		"net/../../../etc/passwd":      "/proc/sys/etc/passwd",
		IPv4Conf("eth0", "arp_notify"): "/proc/sys/net/ipv4/conf/eth0/arp_notify",
		IPv6Conf("br0", "accept_dad"):  "/proc/sys/net/ipv6/conf/br0/accept_dad",
	} {
		if got := path(key); got != want {
			t.Errorf("path(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestGet(t *testing.T) {
	if _, err := Get("kernel/ostype"); err != nil {
		t.Fatalf("Get(kernel/ostype): %v", err)
	}
	if _, err := Get("no/such/key"); err == nil {
		t.Fatal("Get of a missing key succeeded")
	}
}
