package link

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VethSpec describes a veth pair whose one end lives in a container's namespace.
type VethSpec struct {
	ContainerIfName string           // name inside the container (CNI_IFNAME)
	ContainerMAC    net.HardwareAddr // nil: random
	MTU             int              // both ends; 0: kernel default
	HostPrefix      string           // host-side name prefix, default "veth"
	// Master, when set, enslaves the host end at creation, saving a netlink round trip.
	Master netlink.Link
}

// Veth is a created pair, seen from the host namespace.
type Veth struct {
	Host netlink.Link
}

const hostNameTries = 8

// CreateVethInto creates a veth pair in one netlink request: the host end in the calling thread's
// namespace with a fresh random name, the other end directly inside netns (nil: the calling namespace)
// under s.ContainerIfName, both down. The host name is retried on collision; a clash on the container name is an error naming it.
func CreateVethInto(netns ns.NetNS, s VethSpec) (*Veth, error) {
	prefix := s.HostPrefix
	if prefix == "" {
		prefix = "veth"
	}
	for range hostNameTries {
		hostName, err := RandomName(prefix)
		if err != nil {
			return nil, err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = hostName
		attrs.MTU = s.MTU
		if s.Master != nil {
			attrs.MasterIndex = s.Master.Attrs().Index
		}
		v := &netlink.Veth{
			LinkAttrs:        attrs,
			PeerName:         s.ContainerIfName,
			PeerHardwareAddr: s.ContainerMAC,
		}
		where := "the calling namespace"
		if netns != nil {
			v.PeerNamespace = netlink.NsFd(int(netns.Fd()))
			where = "the container's network namespace " + netns.Path()
		}
		err = netlink.LinkAdd(v)
		if err == nil {
			host, err := ByName(hostName)
			if err != nil {
				return nil, fmt.Errorf("veth %q just created: %w", hostName, err)
			}
			return &Veth{Host: host}, nil
		}
		if !errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("create veth %q <-> %q: %w", hostName, s.ContainerIfName, err)
		}
		if _, lerr := ByName(hostName); lerr == nil {
			continue // our random host name was taken; draw again
		}
		return nil, fmt.Errorf("interface %q already exists in %s", s.ContainerIfName, where)
	}
	return nil, fmt.Errorf("create veth for %q: no free host-side name after %d tries", s.ContainerIfName, hostNameTries)
}

// RandomName returns prefix followed by random hex digits, 15 bytes in all (the kernel's limit).
func RandomName(prefix string) (string, error) {
	n := (15 - len(prefix) + 1) / 2
	if n < 4 {
		return "", fmt.Errorf("name prefix %q leaves too few random characters", prefix)
	}
	b := make([]byte, n)
	if err := randomBytes(b); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return (prefix + hex.EncodeToString(b))[:min(15, len(prefix)+2*n)], nil
}

// randomBytes fills b from the kernel's random pool with getrandom(2), what crypto/rand reads too:
// importing crypto/rand links and initialises Go's whole FIPS crypto module, about 230 KiB of peak RSS
// in every plugin process, for a few bytes of a name or a MAC.
func randomBytes(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Getrandom(b, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("getrandom: %w", err)
		}
		b = b[n:]
	}
	return nil
}

// VethPeerIndex returns the ifindex of l's peer (in whichever namespace the peer lives).
func VethPeerIndex(l netlink.Link) (int, error) {
	if _, ok := l.(*netlink.Veth); !ok {
		return 0, fmt.Errorf("%q is a %s, not a veth", l.Attrs().Name, l.Type())
	}
	if l.Attrs().ParentIndex != 0 {
		return l.Attrs().ParentIndex, nil
	}
	idx, err := netlink.VethPeerIndex(l.(*netlink.Veth))
	if err != nil {
		return 0, fmt.Errorf("veth %q: peer index: %w", l.Attrs().Name, err)
	}
	return idx, nil
}

// RandomMAC returns a random locally administered unicast MAC, as the kernel would pick for a veth.
func RandomMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if err := randomBytes(mac); err != nil {
		return nil, fmt.Errorf("random MAC: %w", err)
	}
	mac[0] = mac[0]&0xfe | 0x02
	return mac, nil
}
