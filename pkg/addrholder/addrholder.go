// Package addrholder tells whether a pod address is still in use on this node: whether some network
// namespace other than the node's own has an interface holding it. portmap asks it before taking a
// host port over from an attachment whose forwarding is still installed: when no namespace holds the
// address the rules forward to, that attachment's pod is gone (its netns was deleted without a DEL,
// whichever plugin suite made it) and its forwarding is stale.
//
// It finds the namespaces the kernel keeps alive for a reason a runtime uses: a process in them
// (/proc/<pid>/ns/net) or a bind mount of one (every nsfs mount in /proc/self/mountinfo: /run/netns,
// /var/run/docker/netns, ...). A namespace held only by an open file descriptor is not seen; that errs
// towards "gone", which costs what the reference plugin always does (the newer mapping wins).
package addrholder

import (
	"bufio"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsID identifies a namespace: the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

func idOf(path string) (nsID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, false
	}
	return nsID{uint64(st.Dev), st.Ino}, true
}

// Holder returns a path of a network namespace, neither the caller's nor exclude's (a path, may be
// empty), in which an interface has addr. ok is false when there is none. exclude is the namespace of
// the pod asking: it may hold the address itself (IPAM gave it the stale owner's address).
func Holder(addr netip.Addr, exclude string) (path string, ok bool, err error) {
	addr = addr.Unmap()
	skip := map[nsID]bool{}
	if id, found := idOf("/proc/thread-self/ns/net"); found {
		skip[id] = true
	}
	if id, found := idOf("/proc/1/ns/net"); found {
		skip[id] = true
	}
	if exclude != "" {
		if id, found := idOf(exclude); found {
			skip[id] = true
		}
	}
	for _, p := range candidates() {
		id, found := idOf(p)
		if !found || skip[id] {
			continue
		}
		skip[id] = true
		if holds(p, addr) {
			return p, true, nil
		}
	}
	return "", false, nil
}

// candidates lists a path for every namespace in use: nsfs mounts first (their names say more to a
// person), then each process's.
func candidates() []string {
	var out []string
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			// "id parent major:minor root mountpoint options ... - fstype source superoptions"
			pre, post, found := strings.Cut(s.Text(), " - ")
			fields := strings.Fields(pre)
			if !found || len(fields) < 5 || !strings.HasPrefix(post, "nsfs ") {
				continue
			}
			if strings.HasPrefix(fields[3], "net:") {
				out = append(out, unescape(fields[4]))
			}
		}
		f.Close()
	}
	if pids, err := filepath.Glob("/proc/[0-9]*/ns/net"); err == nil {
		out = append(out, pids...)
	}
	return out
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// holds tells whether an interface of the namespace at path has addr. A namespace that cannot be
// opened (gone meanwhile, or not a network namespace) holds nothing.
func holds(path string, addr netip.Addr) bool {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return false
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return false
	}
	defer nl.Close()
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := nl.AddrList(nil, fam)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == addr {
			return true
		}
	}
	return false
}
