package hostlink

import (
	"context"
	"errors"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
)

// ifContainer is the stacked link's position in the result, as the reference plugins report it: the
// only interface.
const ifContainer = 0

// Stacked is one ADD of a link that stacks on a master and lives in the pod (macvlan, ipvlan): the
// plugins differ only in the link they build, the refusals they explain and where the addresses come
// from.
type Stacked struct {
	IfName string // CNI_IFNAME
	// Find returns the master and where it lives, given the pod's namespace (masters with
	// linkInContainer live there).
	Find func(pod ns.NetNS) (Master, netlink.Link, error)
	// MTU is the "mtu" key (0: the master's); MAC the link's MAC (nil: the kernel's choice).
	MTU int
	MAC net.HardwareAddr
	// New builds the link to make from attributes that have its MTU, master and MAC set.
	New func(attrs netlink.LinkAttrs) netlink.Link
	// Explain turns the kernel's refusal to create the link on master into the error the runtime reads
	// (CreateError, plus the plugin's own cases).
	Explain func(master netlink.Link, err error) error

	// Addresses: the IPAM plugin IPAMType with the network's config Stdin, when IPAMType is set; else
	// Prev's addresses (the chained form, which a previous plugin leased), or none (an L2-only link).
	IPAMType string
	Stdin    []byte
	Prev     *current.Result
	// DNS is the network's "dns" key (plugin.SetDNS).
	DNS types.DNS
}

// Attach runs the ADD in the namespace at netnsPath, as steps that are each a fault point of the
// plugin, in the reference plugins' order: "create" (the master and the MTU, the pod has no CNI_IFNAME
// yet, the link straight into the pod under CNI_IFNAME), "allocate" (IPAM: the link exists, so an IPAM
// plugin that talks on it, dhcp, can) and "configure" (addresses, routes, up). A failure releases the
// lease and removes the link. It returns the result.
func Attach(netnsPath string, s Stacked) (result *current.Result, err error) {
	err = netns.With(netnsPath, func(pod ns.NetNS) error {
		result, err = s.attach(pod)
		return err
	})
	return result, err
}

func (s Stacked) attach(pod ns.NetNS) (*current.Result, error) {
	var (
		add    plugin.Add
		ctx    = context.Background()
		ml     netlink.Link
		l3     = s.Prev // nil: L2 only
		result *current.Result
	)
	create := func() error {
		m, master, err := s.Find(pod)
		if err != nil {
			return err
		}
		ml = master
		attrs := netlink.NewLinkAttrs()
		if attrs.MTU, err = MTUFor(s.MTU, ml); err != nil {
			return err
		}
		attrs.ParentIndex = ml.Attrs().Index
		attrs.HardwareAddr = s.MAC
		if err := RequireFree(pod, s.IfName); err != nil {
			return err
		}
		link := s.New(attrs)
		l, err := CreateInto(pod, m, link, s.IfName)
		if err != nil {
			return s.Explain(ml, err)
		}
		add.OnFailure("remove "+link.Type(), func() error { return Remove(pod, s.IfName) })
		result = &current.Result{
			CNIVersion: current.ImplementedSpecVersion,
			Interfaces: []*current.Interface{{Name: s.IfName, Mac: l.Attrs().HardwareAddr.String(), Sandbox: pod.Path()}},
		}
		return nil
	}
	allocate := func() error {
		if s.IPAMType != "" {
			var err error
			l3, err = add.LeaseInto(ctx, s.IPAMType, s.Stdin, result, ifContainer)
			return err
		}
		if l3 != nil { // the chained form: prevResult's addresses
			for _, ipc := range l3.IPs {
				ipc.Interface = current.Int(ifContainer)
			}
			result.IPs, result.Routes, result.DNS = l3.IPs, l3.Routes, l3.DNS
		}
		return nil
	}
	configure := func() error {
		if l3 == nil {
			return Configure(pod, s.IfName, nil, ifContainer, ipcfg.Options{})
		}
		// The pod shares the master's LAN with hosts IPAM knows nothing of: IPv6 addresses run
		// duplicate address detection, optimistic so that they are usable at once.
		err := Configure(pod, s.IfName, result, ifContainer, ipcfg.Options{OptimisticDAD: true})
		return s.duplicateError(err, ml)
	}
	if err := add.Run(plugin.Do("create", create), plugin.Do("allocate", allocate), plugin.Do("configure", configure)); err != nil {
		return nil, err
	}
	plugin.SetDNS(result, s.DNS)
	return result, nil
}

// duplicateError turns err, when it says an address is in use by another node, into the code-7 error
// naming the key the address came from and the master whose LAN holds the other node; other errors
// are returned as they are.
func (s Stacked) duplicateError(err error, master netlink.Link) error {
	var dup *ipcfg.DuplicateError
	if !errors.As(err, &dup) {
		return err
	}
	key, fix := "ipam", "keep it out of the IPAM range (host-local: rangeStart/rangeEnd) or free it on that node"
	if s.IPAMType == "" {
		key, fix = "prevResult", "the previous plugin leased an address that is taken; keep it out of that plugin's range"
	}
	return conf.Invalid(key, "address %s is already in use by another node on the LAN of master %q (IPv6 duplicate address detection on %q got an answer); %s",
		dup.Addresses(), master.Attrs().Name, dup.Link, fix)
}
