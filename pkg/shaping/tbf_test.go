package shaping

import (
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/utils"
	"github.com/vishvananda/netlink"
)

// The ifb's name must be the reference's, or neither plugin finds the other's device.
func TestIfbNameMatchesReference(t *testing.T) {
	for _, tc := range []struct{ network, id string }{
		{"net", "ctr1"},
		{"cni-plugin-bandwidth-test", "dummy"},
		{"k8s-pod-network", strings.Repeat("0123456789abcdef", 4)},
		{"", ""},
	} {
		want := utils.MustFormatHashWithPrefix(15, "bwp", tc.network+tc.id)
		if got := IfbName(tc.network, tc.id); got != want || len(got) != 15 {
			t.Errorf("IfbName(%q, %q) = %q, want %q", tc.network, tc.id, got, want)
		}
	}
}

func TestTBFFor(t *testing.T) {
	tick := netlink.TickInUsec()
	for _, tc := range []struct {
		name string
		in   Limit
		want TBF
	}{
		// 1 MB/s, 10 kB bucket: the bucket lasts 10 ms; the queue holds 25 ms of rate plus the bucket.
		{"1 MB/s", Limit{8_000_000, 80_000}, TBF{Rate: 1_000_000, Buffer: uint32(10_000 * tick), Limit: 25_000 + 10_000}},
		{"10 Mbit/s", Limit{10_000_000, 1_000_000}, TBF{Rate: 1_250_000, Buffer: uint32(100_000 * tick), Limit: 31_250 + 125_000}},
		// Above 32 bits of bytes per second the kernel gets the rate as TCA_TBF_RATE64.
		{"40 GB/s", Limit{320_000_000_000, 8_000_000}, TBF{Rate: 40_000_000_000, Buffer: uint32(25 * tick), Limit: 1_000_000_000 + 1_000_000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TBFFor(tc.in); got != tc.want {
				t.Errorf("TBFFor(%+v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
	// Runtimes pass a burst of 2^32-1 bits for "no burst limit": the reference's arithmetic wraps the
	// buffer rather than failing, and so must netloom's, or CHECK would disagree with what it made.
	_ = TBFFor(Limit{RateBits: 1_000_000, BurstBits: 1<<32 - 1})
}

func TestMismatch(t *testing.T) {
	want := TBF{Rate: 100, Buffer: 200, Limit: 300}
	for _, tc := range []struct {
		got  netlink.Tbf
		says string
	}{
		{netlink.Tbf{Rate: 100, Buffer: 200, Limit: 300}, ""},
		{netlink.Tbf{Rate: 101, Buffer: 200, Limit: 300}, "rate 101"},
		{netlink.Tbf{Rate: 100, Buffer: 200, Limit: 30}, "limit 30"},
		{netlink.Tbf{Rate: 100, Buffer: 2, Limit: 300}, "buffer 2"},
	} {
		got := want.Mismatch(&tc.got)
		if (tc.says == "") != (got == "") || !strings.Contains(got, tc.says) {
			t.Errorf("Mismatch(%+v) = %q, want %q", tc.got, got, tc.says)
		}
	}
}

func TestIfbAlias(t *testing.T) {
	if a := IfbAlias("net", "ctr1"); a != "netloom bandwidth net ctr1" {
		t.Errorf("alias %q", a)
	}
	if a := IfbAlias("net", strings.Repeat("x", 300)); a != "" {
		t.Errorf("an alias over the kernel's limit: %q", a)
	}
}
