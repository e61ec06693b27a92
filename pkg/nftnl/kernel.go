package nftnl

import (
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The nf_tables features that came with a kernel release. Each answer comes from the running kernel's
// release: a kernel that reports an older one, even with the feature backported, is taken not to have
// it.

// ExpiryUpdates tells whether the running kernel changes the expiration of an element that exists when
// it is added again with a new one (Linux 6.10, "set element timeout update support"), which is what
// Table.RetireElems needs. Older kernels take such an element as a no-op, silently: the element would
// stay.
func ExpiryUpdates() bool { return kernelAtLeast(6, 10) }

// MapLookups tells whether the running kernel lets a rule look up a map's keys without taking the
// values (Linux 6.5, "relax set/map validation checks"), as `ip daddr @map` does. Older kernels refuse
// such a rule (EINVAL).
func MapLookups() bool { return kernelAtLeast(6, 5) }

// Release is the running kernel's release ("6.1.0-40-amd64"), "" when uname fails.
func Release() string { return release() }

var release = sync.OnceValue(func() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
})

func kernelAtLeast(major, minor int) bool { return releaseAtLeast(release(), major, minor) }

// releaseAtLeast tells whether a kernel release string ("6.12.48+deb13-amd64", "5.14.0-570.el9") is
// major.minor or later.
func releaseAtLeast(release string, major, minor int) bool {
	fields := strings.SplitN(release, ".", 3)
	if len(fields) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(fields[0])
	minor2 := fields[1] // "10" of "6.10", "10-rc1" of "6.10-rc1"
	if i := strings.IndexFunc(minor2, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor2 = minor2[:i]
	}
	mi, err2 := strconv.Atoi(minor2)
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mi >= minor
}
