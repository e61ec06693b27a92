// Package hostlink makes the links that stack on a master interface and live in a pod's network
// namespace (macvlan, ipvlan): finding the master and its default, the MTU rule, creating the link
// straight into the pod's namespace under CNI_IFNAME without a name clash, and configuring or
// verifying its addresses. Plugins of that kind compose these and differ only in the link they build.
package hostlink

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/sysctl"
)

// ErrNoDefaultRoute is returned (wrapped) when no master is configured and the namespace has no
// default route to take it from.
var ErrNoDefaultRoute = errors.New("no default route")

// Master is where the master interface lives and what it is called. InPod masters (the
// "linkInContainer" key) are looked up inside Pod; the others in the calling namespace (the host's).
type Master struct {
	Name  string // "": the interface of the namespace's default route
	InPod bool
	Pod   ns.NetNS // required when InPod
}

// in runs f in the master's namespace.
func (m Master) in(f func() error) error {
	if !m.InPod {
		return f()
	}
	if m.Pod == nil {
		return fmt.Errorf("master lives in the pod's namespace, but no namespace was given")
	}
	return m.Pod.Do(func(ns.NetNS) error { return f() })
}

// Lookup returns the master link, resolving an empty name to the default route's interface. A name
// that does not exist wraps link.ErrNotFound; no default route wraps ErrNoDefaultRoute.
func (m Master) Lookup() (netlink.Link, error) {
	var l netlink.Link
	err := m.in(func() error {
		name := m.Name
		if name == "" {
			var err error
			if name, err = DefaultRouteLink(); err != nil {
				return err
			}
		}
		var err error
		l, err = link.ByName(name)
		return err
	})
	if err != nil && errors.Is(err, link.ErrNotFound) && m.Name == "" {
		return nil, fmt.Errorf("default route's interface %w", err)
	}
	return l, err
}

// DefaultRouteLink returns the name of the interface that carries the calling namespace's default
// route: the IPv4 one if there is one, else the IPv6 one, so an IPv6-only node has a master too.
func DefaultRouteLink() (string, error) {
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlinksafe.RouteListFiltered(family, &netlink.Route{Table: syscall.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return "", fmt.Errorf("list routes: %w", err)
		}
		for _, r := range routes {
			if !isDefault(r, family) || r.LinkIndex == 0 {
				continue
			}
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				return "", fmt.Errorf("default route's interface (ifindex %d): %w", r.LinkIndex, err)
			}
			return l.Attrs().Name, nil
		}
	}
	return "", ErrNoDefaultRoute
}

func isDefault(r netlink.Route, family int) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0 && r.Dst.IP.IsUnspecified() && (family == netlink.FAMILY_V4) == (r.Dst.IP.To4() != nil)
}

// ErrMTUAboveMaster is returned (wrapped) by ResolveMTU for an MTU the master cannot carry.
var ErrMTUAboveMaster = errors.New("above the master's MTU")

// ResolveMTU applies the rule every stacked link follows: 0 means the master's MTU, and no more than
// the master's is possible (the kernel would refuse it, less clearly).
func ResolveMTU(requested, masterMTU int) (int, error) {
	if requested == 0 {
		return masterMTU, nil
	}
	if requested > masterMTU {
		return 0, fmt.Errorf("%d is %w (%d)", requested, ErrMTUAboveMaster, masterMTU)
	}
	return requested, nil
}

// tempPrefix names links between their creation and their rename to CNI_IFNAME.
const tempPrefix = "nltmp"

const tempNameTries = 8

// ErrNameTaken is returned (wrapped) when the pod's namespace already has an interface called
// CNI_IFNAME.
var ErrNameTaken = errors.New("already exists")

func nameFree(pod ns.NetNS, ifName string) error {
	return pod.Do(func(ns.NetNS) error {
		if _, err := link.ByName(ifName); err == nil {
			return fmt.Errorf("interface %q %w in %s", ifName, ErrNameTaken, pod.Path())
		} else if !errors.Is(err, link.ErrNotFound) {
			return err
		}
		return nil
	})
}

// RequireFree is the first step of every attachment's ADD, before IPAM: the pod must not have an
// interface called ifName yet. A repeated ADD of a live attachment fails here, while it has changed
// nothing: host-local hands an attachment its own lease again, so a later failure's rollback would
// release the address the pod still uses. The error is code 4 naming CNI_IFNAME.
func RequireFree(pod ns.NetNS, ifName string) error {
	err := nameFree(pod, ifName)
	if errors.Is(err, ErrNameTaken) {
		return conf.InvalidEnv("CNI_IFNAME", "%v; DEL the attachment before adding it again", err)
	}
	return err
}

// CreateInto creates l, a link whose attributes name its master (ParentIndex) in m's namespace, inside
// pod under the name ifName, down. It is created under a random temporary name and renamed inside the
// pod, because some kernels check the new name in the namespace the request comes from as well, where
// CNI_IFNAME "eth0" would clash with the host's eth0 (the reference plugins work around the same bug).
// An ifName the pod already has is an error wrapping ErrNameTaken. On failure nothing is left behind.
func CreateInto(pod ns.NetNS, m Master, l netlink.Link, ifName string) (netlink.Link, error) {
	if err := nameFree(pod, ifName); err != nil {
		return nil, err
	}
	attrs := l.Attrs()
	if m.InPod {
		attrs.Namespace = nil
	} else {
		attrs.Namespace = netlink.NsFd(int(pod.Fd()))
	}
	var tmp string
	for i := 0; ; i++ {
		name, err := link.RandomName(tempPrefix)
		if err != nil {
			return nil, err
		}
		attrs.Name = name
		err = m.in(func() error { return netlink.LinkAdd(l) })
		if err == nil {
			tmp = name
			break
		}
		if !errors.Is(err, syscall.EEXIST) || i == tempNameTries-1 {
			return nil, fmt.Errorf("create %s link on master (ifindex %d): %w", l.Type(), attrs.ParentIndex, err)
		}
	}
	var created netlink.Link
	err := pod.Do(func(ns.NetNS) error {
		tl, err := link.ByName(tmp)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(tl, ifName); err != nil {
			if derr := netlink.LinkDel(tl); derr != nil {
				err = errors.Join(err, fmt.Errorf("remove %q: %w", tmp, derr))
			}
			return fmt.Errorf("rename %q to %q: %w", tmp, ifName, err)
		}
		created, err = link.ByName(ifName)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s link in %s: %w", l.Type(), pod.Path(), err)
	}
	return created, nil
}

// Remove deletes ifName inside pod; it succeeds when the link is already gone.
func Remove(pod ns.NetNS, ifName string) error {
	return pod.Do(func(ns.NetNS) error { return link.Remove(ifName) })
}

// Configure brings ifName up inside pod with res's addresses and routes (nil res: an L2-only
// attachment, just up). The kernel then announces the addresses itself: arp_notify sends a gratuitous
// ARP and ndisc_notify an unsolicited neighbour advertisement as the link comes up, so neighbours that
// cached a previous owner of the IP learn the new MAC at once.
func Configure(pod ns.NetNS, ifName string, res *current.Result, ifIndex int, o ipcfg.Options) error {
	var cfg ipcfg.Config
	if res != nil {
		var err error
		if cfg, err = ipcfg.FromResult(res, ifIndex); err != nil {
			return err
		}
	}
	err := pod.Do(func(ns.NetNS) error {
		if res == nil {
			l, err := link.ByName(ifName)
			if err != nil {
				return err
			}
			return link.SetUp(l)
		}
		_ = sysctl.Set(sysctl.IPv6Conf(ifName, "ndisc_notify"), "1")
		return ipcfg.Apply(ifName, cfg, o)
	})
	if err != nil {
		return fmt.Errorf("configure %q in %s: %w", ifName, pod.Path(), err)
	}
	return nil
}

// Verify checks, inside pod, that ifName has the addresses and routes of res for interface ifIndex;
// inspect, when not nil, checks the link itself (type, mode, MAC) first.
func Verify(pod ns.NetNS, ifName string, res *current.Result, ifIndex int, inspect func(netlink.Link) error) error {
	cfg, err := ipcfg.FromResult(res, ifIndex)
	if err != nil {
		return err
	}
	return pod.Do(func(ns.NetNS) error {
		l, err := link.ByName(ifName)
		if err != nil {
			return err
		}
		if inspect != nil {
			if err := inspect(l); err != nil {
				return err
			}
		}
		return ipcfg.Verify(ifName, cfg)
	})
}

// ErrMasterDown is returned (wrapped) by Ready for a master that is administratively down.
var ErrMasterDown = errors.New("is down")

// Ready reports whether the master exists and is up: what STATUS asks before the runtime sends ADDs.
func (m Master) Ready() error {
	l, err := m.Lookup()
	if err != nil {
		return err
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("master %q %w", l.Attrs().Name, ErrMasterDown)
	}
	return nil
}
