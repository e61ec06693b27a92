package nftnl

import "testing"

func TestReleaseAtLeast(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    bool
	}{
		{"6.10.0", true},
		{"6.10-rc1", true},
		{"6.18.44-fc-v1252", true},
		{"6.12.48+deb13-amd64", true},
		{"7.0.1", true},
		{"6.9.12", false},
		{"6.1.0-40-amd64", false},
		{"5.14.0-570.el9_6.x86_64", false},
		{"6", false},
		{"", false},
		{"x.y", false},
	} {
		if got := releaseAtLeast(tc.release, 6, 10); got != tc.want {
			t.Errorf("releaseAtLeast(%q, 6, 10) = %v, want %v", tc.release, got, tc.want)
		}
	}
}
