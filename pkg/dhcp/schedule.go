package dhcp

import (
	"math/rand/v2"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Lease timing when the server leaves it out (RFC 2131 4.4.5: T1 = 0.5, T2 = 0.875 of the lease; the
// reference takes 0.85 for T2 and one hour for the lease, and so does netloom).
const (
	defaultLeaseTime = 60 * time.Minute
	renewNum         = 50 // T1 = lease * 50 / 100
	rebindNum        = 85 // T2 = lease * 85 / 100
	percent          = 100
)

// Retransmission as the reference does it (RFC 2131 4.1 suggests exponential backoff from 4 s,
// randomized by ±1 s): a few fast retries 2 s apart, then 4 s doubling up to the daemon's -resendmax.
const (
	resendDelay0       = 4 * time.Second
	resendFastDelay    = 2 * time.Second
	resendFastMax      = 4
	resendJitter       = time.Second
	DefaultResendMax   = 62 * time.Second
	DefaultResendLimit = 208 * time.Second // the fast retries and the backoff, as the reference
	DefaultTimeout     = 10 * time.Second  // one request's wait for an answer
)

// phase is where a lease stands in its life (RFC 2131 4.4.5).
type phase int

const (
	bound     phase = iota // before T1: nothing to do
	renewing               // T1..T2: ask the server that granted it
	rebinding              // T2..expiry: ask any server
	expired                // past the lease time: the address is no longer ours
)

func (p phase) String() string {
	return [...]string{"bound", "renewing", "rebinding", "expired"}[p]
}

// schedule is when an acknowledged lease must be renewed, rebound, and when it expires.
type schedule struct {
	renew, rebind, expire time.Time
}

// scheduleFor reads the lease time and T1/T2 from an ACK received at now.
func scheduleFor(ack *dhcpv4.DHCPv4, now time.Time) schedule {
	lease := ack.IPAddressLeaseTime(defaultLeaseTime)
	rebind := ack.IPAddressRebindingTime(lease * rebindNum / percent)
	renew := ack.IPAddressRenewalTime(lease * renewNum / percent)
	return schedule{renew: now.Add(renew), rebind: now.Add(rebind), expire: now.Add(lease)}
}

// at returns the lease's phase at now, and how long it lasts from now (0 once expired).
func (s schedule) at(now time.Time) (phase, time.Duration) {
	switch {
	case now.Before(s.renew):
		return bound, s.renew.Sub(now)
	case now.Before(s.rebind):
		return renewing, s.rebind.Sub(now)
	case now.Before(s.expire):
		return rebinding, s.expire.Sub(now)
	}
	return expired, 0
}

// backoff yields the waits between retransmissions: resendFastMax fast ones, then resendDelay0
// doubling while below max, each randomized by up to ±resendJitter.
type backoff struct {
	max  time.Duration
	fast int
	base time.Duration
}

func newBackoff(max time.Duration) *backoff {
	return &backoff{max: max, fast: resendFastMax, base: resendDelay0}
}

func (b *backoff) next() time.Duration {
	jitter := time.Duration((2*rand.Float64() - 1) * float64(resendJitter))
	if b.fast > 0 {
		b.fast--
		return resendFastDelay + jitter
	}
	d := b.base + jitter
	if b.base < b.max {
		b.base *= 2
	}
	return d
}
