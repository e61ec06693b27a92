package nftnl

import (
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ExpiryUpdates tells whether the running kernel changes the expiration of an element that exists when
// it is added again with a new one (Linux 6.10, "set element timeout update support"), which is what
// Table.RetireElems needs. Older kernels take such an element as a no-op, silently: the element would
// stay. The answer comes from the kernel's release; a kernel that reports an older one, even with the
// feature backported, is taken not to have it.
func ExpiryUpdates() bool { return expiryUpdates() }

var expiryUpdates = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return releaseAtLeast(unix.ByteSliceToString(u.Release[:]), 6, 10)
})

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
