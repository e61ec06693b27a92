package iptables

import (
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/utils"

	"github.com/netloom/netloom/pkg/firewall"
)

func TestNamesMatchReference(t *testing.T) {
	// The reference's utils.MustFormatChainNameWithPrefix("mynet", "c1", "DN-"), pinned so that a change
	// of the hash (which would orphan every chain on upgraded nodes) fails here.
	if got, want := DNATChain("mynet", "c1"), "CNI-DN-f0bca4ac77cde1bf2f3da"; got != want {
		t.Errorf("DNATChain = %q, want %q", got, want)
	}
	if got, want := oldSNATChain("mynet", "c1"), utils.MustFormatChainNameWithPrefix("mynet", "c1", "SN-"); got != want {
		t.Errorf("oldSNATChain = %q, want %q", got, want)
	}
	for _, k := range [][2]string{{"", ""}, {"k8s-pod-network", strings.Repeat("0123456789abcdef", 4)}, {"net", "ünïcode"}} {
		if got, want := DNATChain(k[0], k[1]), utils.MustFormatChainNameWithPrefix(k[0], k[1], "DN-"); got != want {
			t.Errorf("DNATChain%q = %q, the reference's %q", k, got, want)
		}
	}
	for _, c := range []string{DNATChain("mynet", "c1"), DNATChain(strings.Repeat("n", 200), "x")} {
		if len(c) > 28 {
			t.Errorf("chain %q is longer than iptables allows", c)
		}
	}
}

func TestComment(t *testing.T) {
	for _, tc := range []struct {
		k    firewall.Key
		want string
	}{
		{firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "eth0"}, `dnat name: "mynet" id: "c1" if: "eth0"`},
		{firewall.Key{Network: `we"ird net`, ContainerID: "c.1-_", IfName: `e"\0`}, `dnat name: "we"ird net" id: "c.1-_" if: "e\"\\0"`},
	} {
		got := Comment(tc.k)
		if got != tc.want {
			t.Errorf("Comment(%v) = %s, want %s", tc.k, got, tc.want)
		}
		o, ok := parseComment(got)
		if !ok || o != (owner{tc.k.Network, tc.k.ContainerID, tc.k.IfName, true}) {
			t.Errorf("parseComment(%s) = %+v, %v", got, o, ok)
		}
		if !o.is(tc.k) || o.String() != tc.k.String() {
			t.Errorf("owner %v: is(%v) false or String differs", o, tc.k)
		}
	}
	// The reference's comment names no interface: it stands for every interface of the container.
	ref := `dnat name: "mynet" id: "c1"`
	o, ok := parseComment(ref)
	if !ok || o != (owner{network: "mynet", containerID: "c1"}) || o.String() != "mynet/c1" {
		t.Errorf("parseComment(%s) = %+v, %v", ref, o, ok)
	}
	if !o.is(firewall.Key{Network: "mynet", ContainerID: "c1", IfName: "net1"}) {
		t.Error("a reference comment does not match the container's interfaces")
	}
	long := Comment(firewall.Key{Network: strings.Repeat("n", 300), ContainerID: "c1", IfName: "eth0"})
	if len(long) != commentMax || !strings.HasSuffix(long, "...") {
		t.Errorf("long comment not trimmed to %d: %d bytes", commentMax, len(long))
	}
	for _, c := range []string{"", long, `name: "mynet" id: "c1"`, `dnat name: "a" id: "b" if: eth0`,
		`dnat name: "a" id: "b" extra`, "CNI portfwd masquerade mark"} {
		if o, ok := parseComment(c); ok {
			t.Errorf("parseComment(%q) accepted: %+v", c, o)
		}
	}
}
