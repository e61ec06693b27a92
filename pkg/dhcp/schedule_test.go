package dhcp

import (
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestSchedule(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name                  string
		mods                  []dhcpv4.Modifier
		renew, rebind, expire time.Duration
	}{
		{name: "no times: one hour, T1 half, T2 85%", renew: 30 * time.Minute, rebind: 51 * time.Minute, expire: time.Hour},
		{name: "lease time only", mods: []dhcpv4.Modifier{dhcpv4.WithLeaseTime(120)}, renew: time.Minute, rebind: 102 * time.Second, expire: 2 * time.Minute},
		{name: "server's T1 and T2", mods: []dhcpv4.Modifier{dhcpv4.WithLeaseTime(120),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(50 * time.Second)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(100 * time.Second))},
			renew: 50 * time.Second, rebind: 100 * time.Second, expire: 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := scheduleFor(ack(t, tc.mods...), now)
			if s.renew.Sub(now) != tc.renew || s.rebind.Sub(now) != tc.rebind || s.expire.Sub(now) != tc.expire {
				t.Errorf("schedule %v %v %v, want %v %v %v", s.renew.Sub(now), s.rebind.Sub(now), s.expire.Sub(now), tc.renew, tc.rebind, tc.expire)
			}
		})
	}

	s := schedule{renew: now.Add(60 * time.Second), rebind: now.Add(105 * time.Second), expire: now.Add(120 * time.Second)}
	for _, tc := range []struct {
		at    time.Duration
		phase phase
		lasts time.Duration
	}{
		{0, bound, 60 * time.Second},
		{59 * time.Second, bound, time.Second},
		{60 * time.Second, renewing, 45 * time.Second},
		{104 * time.Second, renewing, time.Second},
		{105 * time.Second, rebinding, 15 * time.Second},
		{120 * time.Second, expired, 0},
		{time.Hour, expired, 0},
	} {
		ph, d := s.at(now.Add(tc.at))
		if ph != tc.phase || d != tc.lasts {
			t.Errorf("at +%v: %v for %v, want %v for %v", tc.at, ph, d, tc.phase, tc.lasts)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(16 * time.Second)
	want := []time.Duration{2, 2, 2, 2, 4, 8, 16, 16, 16} // seconds, ±1: doubling stops at the max
	for i, w := range want {
		d := b.next()
		if d < (w-1)*time.Second || d > (w+1)*time.Second {
			t.Errorf("wait %d = %v, want %d s ±1 s", i, d, w)
		}
	}
}
