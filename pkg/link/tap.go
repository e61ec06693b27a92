package link

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TapSpec is a persistent tap device to create in the calling thread's namespace.
type TapSpec struct {
	Name       string
	MultiQueue bool
	// Owner and Group, when set, are the only user and group allowed to attach to the tap without
	// CAP_NET_ADMIN; unset, the kernel records none (-1).
	Owner, Group *uint32
	// VnetHdr asks for virtio-net headers (IFF_VNET_HDR) and no IFF_NO_PI on a single-queue tap: what the
	// reference tap plugin's netlink path makes when both owner and group are set.
	VnetHdr bool
	MTU     int              // 0: the kernel's default
	MAC     net.HardwareAddr // nil: a random one
	// SELinuxLabel, when set, is the process label the tap is created under (the kernel labels a tun
	// device after its creator): `ip tuntap add` is run under it, as the reference does.
	SELinuxLabel string
}

// tunDevice is the tun/tap clone device.
const tunDevice = "/dev/net/tun"

// ErrSELinuxOff is returned (wrapped) by CreateTap for a label on a node where SELinux is not enabled.
var ErrSELinuxOff = errors.New("SELinux is not enabled on this node")

// flags returns the TUNSETIFF flags of s.
func (s TapSpec) flags() uint16 {
	f := uint16(unix.IFF_TAP)
	if s.VnetHdr {
		f |= unix.IFF_VNET_HDR
		if s.MultiQueue {
			f |= unix.IFF_MULTI_QUEUE | unix.IFF_NO_PI
		}
		return f
	}
	f |= unix.IFF_NO_PI
	if s.MultiQueue {
		f |= unix.IFF_MULTI_QUEUE
	}
	return f
}

// CreateTap creates the persistent tap s describes in the calling thread's namespace, down, and
// returns it. On failure nothing is left.
func CreateTap(s TapSpec) (netlink.Link, error) {
	var err error
	if s.SELinuxLabel != "" {
		err = createTapLabelled(s)
	} else {
		err = createTapIoctl(s)
	}
	if err != nil {
		return nil, fmt.Errorf("create tap %q: %w", s.Name, err)
	}
	l, err := ByName(s.Name)
	if err == nil {
		err = setTapAttrs(l, s)
	}
	if err != nil {
		_ = Remove(s.Name)
		return nil, fmt.Errorf("tap %q: %w", s.Name, err)
	}
	return ByName(s.Name)
}

func setTapAttrs(l netlink.Link, s TapSpec) error {
	if s.MTU != 0 {
		if err := netlink.LinkSetMTU(l, s.MTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", s.MTU, err)
		}
	}
	if s.MAC != nil {
		if err := netlink.LinkSetHardwareAddr(l, s.MAC); err != nil {
			return fmt.Errorf("set MAC %s: %w", s.MAC, err)
		}
	}
	return nil
}

// ifreq is struct ifreq as TUNSETIFF reads it: a name and the flags.
type ifreq struct {
	Name  [unix.IFNAMSIZ]byte
	Flags uint16
	_     [22]byte
}

func createTapIoctl(s TapSpec) error {
	fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", tunDevice, err)
	}
	defer unix.Close(fd)
	var req ifreq
	copy(req.Name[:unix.IFNAMSIZ-1], s.Name)
	req.Flags = s.flags()
	ioctl := func(what string, op, arg uintptr) error {
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), op, arg); errno != 0 {
			return fmt.Errorf("%s: %w", what, errno)
		}
		return nil
	}
	if err := ioctl("TUNSETIFF", unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); err != nil {
		return err
	}
	// Until TUNSETPERSIST the tap dies with fd, so a failure below leaves nothing.
	if s.Owner != nil {
		if err := ioctl("TUNSETOWNER", unix.TUNSETOWNER, uintptr(*s.Owner)); err != nil {
			return err
		}
	}
	if s.Group != nil {
		if err := ioctl("TUNSETGROUP", unix.TUNSETGROUP, uintptr(*s.Group)); err != nil {
			return err
		}
	}
	return ioctl("TUNSETPERSIST", unix.TUNSETPERSIST, 1)
}

// selinuxExecAttr is where a thread sets the label of the programs it executes next.
const selinuxExecAttr = "/proc/thread-self/attr/exec"

// createTapLabelled runs `ip tuntap add` under s.SELinuxLabel. The caller's thread must be locked (a
// namespace closure is): the exec label is per thread and is cleared again afterwards.
func createTapLabelled(s TapSpec) error {
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err != nil {
		return ErrSELinuxOff
	}
	if err := os.WriteFile(selinuxExecAttr, []byte(s.SELinuxLabel), 0); err != nil {
		return fmt.Errorf("set exec label %q: %w", s.SELinuxLabel, err)
	}
	defer os.WriteFile(selinuxExecAttr, nil, 0)
	args := []string{"tuntap", "add", "mode", "tap", "name", s.Name}
	if s.MultiQueue {
		args = append(args, "multi_queue")
	}
	if s.VnetHdr {
		args = append(args, "vnet_hdr")
	}
	if s.Owner != nil {
		args = append(args, "user", strconv.FormatUint(uint64(*s.Owner), 10))
	}
	if s.Group != nil {
		args = append(args, "group", strconv.FormatUint(uint64(*s.Group), 10))
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
