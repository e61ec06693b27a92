package hostlink

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/ipamexec"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
)

// Config is what the DEL, CHECK, GC and STATUS of a stacked-link plugin need to know of its parsed
// configuration. Those commands are the same for every such plugin (Del, Check, GC, Status below);
// only ADD builds a plugin's own link (Attach).
type Config interface {
	// Net is the configuration's common part (name, cniVersion, prevResult, ipam).
	Net() *types.NetConf
	// IPAMType is the IPAM plugin that leases the link's addresses; "" when the plugin has none (an L2
	// link, or the chained form whose addresses a previous plugin leased).
	IPAMType() string
	// MasterFor says where the master is, for CHECK (pod: the attachment's namespace) and STATUS (pod
	// nil); known is false when the master cannot be known then (it lives in each pod's namespace, or
	// each ADD's prevResult named it), and it is not checked.
	MasterFor(pod ns.NetNS) (m Master, known bool)
	// Inspect returns an error saying how l, the pod's interface, is not the link the configuration
	// asks for (its type, its mode).
	Inspect(l netlink.Link) error
}

// Del releases the link's lease, then removes the link from the pod (a namespace that is gone took it
// along): the reference plugins' order, which lets an IPAM plugin that talks on the link (dhcp) send its
// release through it. The link is removed even when the release fails; both errors are reported.
func Del[C Config](n C, args *plugin.Args) error {
	var errs []error
	if t := n.IPAMType(); t != "" {
		errs = append(errs, ipamexec.Del(context.Background(), t, args.StdinData))
	}
	errs = append(errs, RemoveAt(args.Netns, args.IfName))
	return errors.Join(errs...)
}

// Check verifies the lease, then that the pod's interface is the ADD result's: the link the
// configuration asks for, on its master, with the result's MAC, addresses and routes.
func Check[C Config](n C, args *plugin.Args) error {
	prev, err := conf.CheckPrevResult(n.Net())
	if err != nil {
		return err
	}
	if t := n.IPAMType(); t != "" {
		if err := ipamexec.Check(context.Background(), t, args.StdinData); err != nil {
			return err
		}
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		var ml netlink.Link // nil: not compared
		if m, known := n.MasterFor(pod); known {
			if ml, err = m.Find(); err != nil {
				return err
			}
		}
		return CheckAttachment(pod, args.IfName, prev, ml, n.Inspect)
	})
}

// GC releases the leases of attachments the runtime no longer lists: the links died with their
// namespaces, so leases are all that can outlive an attachment.
func GC[C Config](n C, args *plugin.Args) error {
	if _, err := plugin.ValidAttachments(args.StdinData); err != nil {
		return err
	}
	if t := n.IPAMType(); t != "" {
		return ipamexec.GC(context.Background(), t, args.StdinData)
	}
	return nil
}

// Status fails (code 50) while a known master is missing or down, then reports the IPAM plugin's status.
func Status[C Config](n C, args *plugin.Args) error {
	if m, known := n.MasterFor(nil); known {
		if err := m.Status(); err != nil {
			return err
		}
	}
	if t := n.IPAMType(); t != "" {
		return ipamexec.Status(context.Background(), t, args.StdinData)
	}
	return nil
}

// InspectKind is Inspect for a link of type T whose mode mode returns: it must be a T (kind names it)
// in the mode want (named by name).
func InspectKind[T netlink.Link, M comparable](l netlink.Link, kind string, mode func(T) M, want M, name func(M) string) error {
	t, ok := l.(T)
	if !ok {
		return fmt.Errorf("%q is a %s, not a %s", l.Attrs().Name, l.Type(), kind)
	}
	if got := mode(t); got != want {
		return fmt.Errorf("%q is in %s mode %q, config says %q", l.Attrs().Name, kind, name(got), name(want))
	}
	return nil
}
