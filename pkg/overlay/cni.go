package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/ipmasq"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/ipamexec"
	"github.com/netloom/netloom/pkg/ipcfg"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
)

// Positions of the interfaces in the result.
const (
	ifHost      = 0
	ifContainer = 1
)

// Commands returns the CNI commands of the overlay plugin of kind k, for plugin.Main.
func Commands(k Kind) plugin.Funcs {
	c := commands{kind: k}
	return plugin.Funcs{Add: c.add, Del: c.del, Check: c.check, GC: c.gc, Status: c.status}
}

type commands struct{ kind Kind }

// ADD: resolve the node and the peers, make the tunnel and the peer state match them, then lease the
// pod's addresses, attach it by a routed veth and masquerade it when asked. The tunnel and the peer
// state are shared by every pod and stay on failure; the lease, the veth and the rules are undone.
// Each step is a fault point of the plugin (pkg/fault).
func (c commands) add(args *plugin.Args) error {
	n, err := Parse(c.kind, args.StdinData)
	if err != nil {
		return err
	}
	return netns.With(args.Netns, func(pod ns.NetNS) error {
		a := &adder{kind: c.kind, n: n, args: args, pod: pod, ctx: context.Background()}
		if err := a.Run(
			plugin.Do("sync", a.sync),
			plugin.Do("allocate", a.allocate),
			plugin.Do("attach", a.attach),
			plugin.Do("masquerade", a.masquerade),
		); err != nil {
			return err
		}
		return plugin.PrintResult(a.result(), n.CNIVersion)
	})
}

// adder carries one ADD through its steps; plugin.Add remembers how to undo each.
type adder struct {
	plugin.Add
	kind Kind
	n    *NetConf
	args *plugin.Args
	pod  ns.NetNS
	ctx  context.Context

	nw       *Network
	ipamConf []byte
	lease    *current.Result
	ips      []netip.Addr
	cfg      ipcfg.Config
	veth     *RoutedVeth
}

// sync makes the tunnel and the peer state match the configuration: shared by every pod, never undone.
func (a *adder) sync() error {
	nw, err := a.n.Resolve()
	if err != nil {
		return err
	}
	if _, err := nw.Sync(); err != nil {
		if errors.Is(err, syscall.EOPNOTSUPP) {
			return conf.NotAvailable("%v", err)
		}
		return err
	}
	a.nw = nw
	return nil
}

func (a *adder) allocate() error {
	var err error
	if a.ipamConf, err = ipamStdin(a.args.StdinData, a.n); err != nil {
		return err
	}
	if err := hostlink.RequireFree(a.pod, a.args.IfName); err != nil {
		return err
	}
	if a.lease, err = ipamexec.Add(a.ctx, a.n.IPAM.Type, a.ipamConf); err != nil {
		return err
	}
	a.OnFailure("release IP", func() error { return ipamexec.Del(a.ctx, a.n.IPAM.Type, a.ipamConf) })
	ips, extra, err := podAddresses(a.lease, a.n.podCIDR)
	if err != nil {
		return err
	}
	a.ips, a.cfg = ips, PodConfig(ips, extra)
	return nil
}

func (a *adder) attach() error {
	rv, err := AttachRoutedVeth(a.pod, a.args.IfName, a.nw.MTU, a.cfg)
	if err != nil {
		return err
	}
	a.veth = rv
	a.OnFailure("remove veth", func() error { return link.Remove(rv.HostName) })
	return nil
}

func (a *adder) masquerade() error {
	if !a.n.IPMasq {
		return nil
	}
	m, err := ipmasq.ForConfig(a.n.masqBE)
	if err != nil {
		return err
	}
	k := firewall.KeyFor(a.n.Name, a.args)
	if err := m.Ensure(k, masqPrefixes(a.ips, a.n.clusterCIDR)); err != nil {
		return fmt.Errorf("ipMasq: %w", err)
	}
	a.OnFailure("remove masquerade", func() error { return m.Remove(k) })
	return nil
}

// result reports the routed veth: each address as a host address with the link-local next hop.
func (a *adder) result() *current.Result {
	r := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: a.veth.HostName, Mac: a.veth.HostMAC.String()},
			{Name: a.args.IfName, Mac: a.veth.ContainerMAC.String(), Sandbox: a.args.Netns},
		},
		DNS: a.lease.DNS,
	}
	for _, ip := range a.ips {
		gw := PodGatewayV4
		if ip.Is6() {
			gw = PodGatewayV6
		}
		r.IPs = append(r.IPs, &current.IPConfig{
			Interface: current.Int(ifContainer), Address: *addr.IPNet(netip.PrefixFrom(ip, ip.BitLen())), Gateway: gw.AsSlice(),
		})
	}
	for _, rt := range a.cfg.Routes {
		if rt.GW.IsValid() {
			r.Routes = append(r.Routes, resultRoute(rt.Dst, rt.GW))
		}
	}
	plugin.SetDNS(r, a.n.DNS)
	return r
}

// DEL removes the pod's veth (with its routes), its lease and its masquerade rules. It needs neither the
// kernel's tunnel nor a readable peers file, and succeeds when any of them is already gone. A failure
// of one part does not stop the others: every error is returned, joined.
func (c commands) del(args *plugin.Args) error {
	n, err := Parse(c.kind, args.StdinData)
	if err != nil {
		return err
	}
	if err := hostlink.RemoveAt(args.Netns, args.IfName); err != nil {
		return err
	}
	var errs []error
	if ipamConf, err := ipamStdin(args.StdinData, n); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, ipamexec.Del(context.Background(), n.IPAM.Type, ipamConf))
	}
	if n.IPMasq {
		errs = append(errs, ipmasq.RemoveFor(n.masqBE, firewall.KeyFor(n.Name, args), ipmasq.DelHint(&n.NetConf)))
	}
	return errors.Join(errs...)
}

// CHECK verifies the pod (veth, addresses, routes on both ends), the lease, the masquerade rules and the
// peer state: a missing, changed or stale peer entry fails it, naming the entry.
func (c commands) check(args *plugin.Args) error {
	n, err := Parse(c.kind, args.StdinData)
	if err != nil {
		return err
	}
	prev, err := conf.CheckPrevResult(&n.NetConf)
	if err != nil {
		return err
	}
	ipamConf, err := ipamStdin(args.StdinData, n)
	if err != nil {
		return err
	}
	if err := ipamexec.Check(context.Background(), n.IPAM.Type, ipamConf); err != nil {
		return err
	}
	nw, err := n.Resolve()
	if err != nil {
		return err
	}
	diffs, err := nw.Diff()
	if err != nil {
		return err
	}
	if len(diffs) > 0 {
		return fmt.Errorf("peer state of %s device %q differs from the configuration (run `netloom overlay sync`): %s", c.kind.Tunnel, n.Device, strings.Join(diffs, "; "))
	}
	if len(prev.Interfaces) <= ifContainer || prev.Interfaces[ifContainer].Name != args.IfName {
		return conf.Invalid("prevResult", "interfaces[%d] is not %q; was this result made by %s?", ifContainer, args.IfName, c.kind.Plugin)
	}
	ips, extra, err := podAddresses(prev, n.podCIDR)
	if err != nil {
		return conf.Invalid("prevResult", "%v", err)
	}
	pod, err := netns.Open(args.Netns)
	if err != nil {
		return err
	}
	defer pod.Close()
	cfg := PodConfig(ips, extra)
	if err := VerifyRoutedVeth(pod, args.IfName, prev.Interfaces[ifHost].Name, cfg); err != nil {
		return err
	}
	if n.IPMasq {
		if err := ipmasq.CheckFor(n.masqBE, firewall.KeyFor(n.Name, args), masqPrefixes(ips, n.clusterCIDR)); err != nil {
			return err
		}
	}
	return nil
}

// GC releases the leases and masquerade rules of attachments the runtime no longer lists, and brings the
// peer state up to date (the veths die with their pods' namespaces).
func (c commands) gc(args *plugin.Args) error {
	n, err := Parse(c.kind, args.StdinData)
	if err != nil {
		return err
	}
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	ipamConf, err := ipamStdin(args.StdinData, n)
	if err != nil {
		return err
	}
	if err := ipamexec.GC(context.Background(), n.IPAM.Type, ipamConf); err != nil {
		return err
	}
	if n.IPMasq {
		if err := ipmasq.GCFor(n.masqBE, n.Name, valid); err != nil {
			return err
		}
	}
	nw, err := n.Resolve()
	if err != nil {
		return err
	}
	_, err = nw.Sync()
	return err
}

// STATUS fails (code 50) while the configuration cannot be resolved (peers file, underlay), the underlay
// interface is down, or this kernel has no support for the tunnel, and reports the IPAM plugin's status.
// It only reads: the device and the peer state are made by the next ADD, GC or `netloom overlay sync`.
func (c commands) status(args *plugin.Args) error {
	n, err := Parse(c.kind, args.StdinData)
	if err != nil {
		return err
	}
	nw, err := n.Resolve()
	if err != nil {
		return conf.NotAvailable("%s: %v", c.kind.Plugin, err)
	}
	if nw.Underlay.Attrs().Flags&net.FlagUp == 0 {
		return conf.NotAvailable("%s: underlay interface %q is down", c.kind.Plugin, nw.Underlay.Attrs().Name)
	}
	if _, err := link.ByName(n.Device); errors.Is(err, link.ErrNotFound) && !link.KernelHas(c.kind.Tunnel) {
		return conf.NotAvailable("%s: this kernel has no %s support (module %q): the device %s cannot be made", c.kind.Plugin, c.kind.Tunnel, c.kind.Tunnel, n.Device)
	}
	ipamConf, err := ipamStdin(args.StdinData, n)
	if err != nil {
		return err
	}
	return ipamexec.Status(context.Background(), n.IPAM.Type, ipamConf)
}

// masqPrefixes gives each pod address the cluster CIDR's length: the masquerader leaves traffic to that
// prefix alone, so pod-to-pod traffic across nodes is never translated.
func masqPrefixes(ips []netip.Addr, cluster netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ips))
	for _, ip := range ips {
		if ip.Is4() == cluster.Addr().Is4() {
			out = append(out, netip.PrefixFrom(ip, cluster.Bits()))
		}
	}
	return out
}

// podAddresses returns the addresses of res (an IPAM result or a prevResult) and its non-default routes;
// an address outside podCIDR is an error: other nodes route only podCIDR here.
func podAddresses(res *current.Result, podCIDR netip.Prefix) ([]netip.Addr, []netip.Prefix, error) {
	var ips []netip.Addr
	for i, ipc := range res.IPs {
		p, ok := addr.FromIPNet(ipc.Address)
		if !ok {
			return nil, nil, fmt.Errorf("ips[%d]: %v is not an address", i, ipc.Address)
		}
		if p.Addr().Is4() != podCIDR.Addr().Is4() {
			continue // another family than the overlay's: not routable here
		}
		if !podCIDR.Contains(p.Addr()) {
			return nil, nil, conf.Invalid("ipam", "gave %s, outside podCIDR %s; the other nodes route only podCIDR to this node, so let IPAM allocate from it (leave out its subnet to use podCIDR)", p.Addr(), podCIDR)
		}
		ips = append(ips, p.Addr())
	}
	if len(ips) == 0 {
		return nil, nil, conf.Invalid("ipam", "gave no address in podCIDR %s", podCIDR)
	}
	var extra []netip.Prefix
	for _, r := range res.Routes {
		if p, ok := addr.FromIPNet(r.Dst); ok && p.Bits() != 0 && !slices.Contains(extra, p.Masked()) {
			extra = append(extra, p.Masked())
		}
	}
	return ips, extra, nil
}

// ipamStdin is the configuration passed to the IPAM plugin: the network's own, with host-local's subnet
// set to podCIDR when the ipam section gives neither "subnet" nor "ranges".
func ipamStdin(stdin []byte, n *NetConf) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &top); err != nil {
		return nil, conf.Invalid("ipam", "%v", err)
	}
	var ipam map[string]json.RawMessage
	if err := json.Unmarshal(top["ipam"], &ipam); err != nil {
		return nil, conf.Invalid("ipam", "is not an object: %v", err)
	}
	_, hasSubnet := ipam["subnet"]
	_, hasRanges := ipam["ranges"]
	if n.IPAM.Type != "host-local" || hasSubnet || hasRanges {
		return stdin, nil
	}
	ranges, _ := json.Marshal([][]map[string]string{{{"subnet": n.podCIDR.String()}}})
	ipam["ranges"] = ranges
	b, _ := json.Marshal(ipam)
	top["ipam"] = b
	return json.Marshal(top)
}

func resultRoute(dst netip.Prefix, gw netip.Addr) *types.Route {
	return &types.Route{Dst: *addr.IPNet(dst), GW: gw.AsSlice()}
}
