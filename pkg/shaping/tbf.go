// Package shaping holds every tc operation netloom makes: token-bucket (tbf) qdiscs that cap the rate a
// link transmits at, and the ifb device, ingress qdisc and mirred filter that turn what a link receives
// into what an ifb transmits, so that direction can be capped too. The layout is the reference
// bandwidth plugin's (containernetworking/plugins v1.9.1), handle for handle and parameter for
// parameter, so links shaped by either plugin are checked and removed by the other.
package shaping

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/digest"
)

const (
	// IfbPrefix starts the name of every ifb device the bandwidth plugins create.
	IfbPrefix = "bwp"
	// ifbNameLen is the kernel's longest interface name (IFNAMSIZ - 1).
	ifbNameLen = 15
	// latencyMillis is how long a packet may wait in a tbf queue: it sizes the queue (tbf "latency").
	latencyMillis = 25.0
	// MaxBurstBytes bounds a burst: the kernel holds a tbf's buffer in 32 bits.
	MaxBurstBytes = 1<<32 - 1
	// MinRateBits is the smallest rate a tbf can hold: the kernel's rate is in bytes per second.
	MinRateBits = 8
)

// IfbName is the ifb device of the attachment of containerID to network: the reference's name,
// "bwp" and the start of the hex SHA-512 of network+containerID, so either plugin finds the other's.
func IfbName(network, containerID string) string {
	return fmt.Sprintf("%s%x", IfbPrefix, digest.Sum512([]byte(network+containerID)))[:ifbNameLen]
}

// Limit is a rate in bits per second with its burst in bits, as the bandwidth keys give them.
type Limit struct {
	RateBits, BurstBits uint64
}

// Set reports whether the limit asks for shaping.
func (l Limit) Set() bool { return l.RateBits > 0 && l.BurstBits > 0 }

// TBF is what the kernel holds for a tbf qdisc: the rate in bytes per second, the bucket as the time
// the rate takes to fill it (in psched ticks), and the queue length in bytes.
type TBF struct {
	Rate   uint64
	Buffer uint32
	Limit  uint32
}

// TBFFor computes a limit's tbf with the reference plugin's arithmetic, conversions included, so that
// CHECK compares equal whichever plugin made the qdisc. (A burst that lasts longer than the 32-bit
// buffer can hold wraps as it does there: runtimes pass bursts of 2^32-1 bits "for no limit".)
func TBFFor(l Limit) TBF {
	rate := l.RateBits / 8
	burst := uint32(l.BurstBits / 8)
	latency := float64(netlink.TIME_UNITS_PER_SEC) * (latencyMillis / 1000.0)
	return TBF{
		Rate:   rate,
		Buffer: time2Tick(uint32(float64(burst) * float64(netlink.TIME_UNITS_PER_SEC) / float64(rate))),
		Limit:  uint32(float64(rate)*latency/float64(netlink.TIME_UNITS_PER_SEC)) + burst,
	}
}

func time2Tick(usec uint32) uint32 { return uint32(float64(usec) * netlink.TickInUsec()) }

// Mismatch says how a tbf qdisc differs from want; "" when it does not.
func (want TBF) Mismatch(got *netlink.Tbf) string {
	switch {
	case got.Rate != want.Rate:
		return fmt.Sprintf("rate %d bytes/s, want %d", got.Rate, want.Rate)
	case got.Limit != want.Limit:
		return fmt.Sprintf("limit %d bytes, want %d", got.Limit, want.Limit)
	case got.Buffer != want.Buffer:
		return fmt.Sprintf("buffer %d ticks, want %d", got.Buffer, want.Buffer)
	}
	return ""
}
