package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/addr"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/firewall/ipmasq"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/ipamexec"
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
func Commands(k Kind) skel.CNIFuncs {
	c := commands{kind: k}
	return skel.CNIFuncs{Add: c.add, Del: c.del, Check: c.check, GC: c.gc, Status: c.status}
}

type commands struct{ kind Kind }

// ADD: resolve the node and the peers, make the tunnel and the peer state match them, then lease the
// pod's addresses, attach it by a routed veth and masquerade it when asked. The tunnel and the peer
// state are shared by every pod and stay on failure; the lease, the veth and the rules are undone.
func (c commands) add(args *skel.CmdArgs) error {
	n, err := Parse(c.kind, args.StdinData)
	if err != nil {
		return err
	}
	pod, err := netns.Open(args.Netns)
	if err != nil {
		return err
	}
	defer pod.Close()
	nw, err := n.Resolve()
	if err != nil {
		return err
	}
	if _, err := nw.Sync(); err != nil {
		if errors.Is(err, syscall.EOPNOTSUPP) {
			return conf.NotAvailable("%v", err)
		}
		return err
	}

	ctx := context.Background()
	ipamConf, err := ipamStdin(args.StdinData, n)
	if err != nil {
		return err
	}
	var undo []func()
	ok := false // set only on success, so no shadowed err can skip the rollback
	defer func() {
		for i := len(undo) - 1; !ok && i >= 0; i-- {
			undo[i]()
		}
	}()
	if err := hostlink.RequireFree(pod, args.IfName); err != nil {
		return err
	}
	res, err := ipamexec.Add(ctx, n.IPAM.Type, ipamConf)
	if err != nil {
		return err
	}
	undo = append(undo, func() { c.logErr("rollback: release IP", ipamexec.Del(ctx, n.IPAM.Type, ipamConf)) })
	ips, extra, err := podAddresses(res, n.podCIDR)
	if err != nil {
		return err
	}
	cfg := PodConfig(ips, extra)
	rv, err := AttachRoutedVeth(pod, args.IfName, nw.MTU, cfg)
	if err != nil {
		return err
	}
	undo = append(undo, func() { c.logErr("rollback: remove veth", link.Remove(rv.HostName)) })
	if n.IPMasq {
		m, err := c.masq(n)
		if err != nil {
			return err
		}
		k := c.masqKey(n, args)
		if err := m.Ensure(k, masqPrefixes(ips, n.clusterCIDR)); err != nil {
			return fmt.Errorf("ipMasq: %w", err)
		}
		undo = append(undo, func() { c.logErr("rollback: remove masquerade", m.Remove(k)) })
	}

	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: rv.HostName, Mac: rv.HostMAC.String()},
			{Name: args.IfName, Mac: rv.ContainerMAC.String(), Sandbox: args.Netns},
		},
		DNS: res.DNS,
	}
	for _, ip := range ips {
		gw := PodGatewayV4
		if ip.Is6() {
			gw = PodGatewayV6
		}
		result.IPs = append(result.IPs, &current.IPConfig{
			Interface: current.Int(ifContainer), Address: *addr.IPNet(netip.PrefixFrom(ip, ip.BitLen())), Gateway: gw.AsSlice(),
		})
	}
	for _, r := range cfg.Routes {
		if r.GW.IsValid() {
			result.Routes = append(result.Routes, resultRoute(r.Dst, r.GW))
		}
	}
	if d := n.DNS; d.Nameservers != nil || d.Search != nil || d.Options != nil || d.Domain != "" {
		result.DNS = d
	}
	ok = true
	return plugin.PrintResult(result, n.CNIVersion)
}

// DEL removes the pod's veth (with its routes), its lease and its masquerade rules. It needs neither the
// kernel's tunnel nor a readable peers file, and succeeds when any of them is already gone.
func (c commands) del(args *skel.CmdArgs) error {
	n, err := Parse(c.kind, args.StdinData)
	if err != nil {
		return err
	}
	if err := hostlink.RemoveAt(args.Netns, args.IfName); err != nil {
		return err
	}
	ipamConf, err := ipamStdin(args.StdinData, n)
	if err != nil {
		return err
	}
	if err := ipamexec.Del(context.Background(), n.IPAM.Type, ipamConf); err != nil {
		return err
	}
	if n.IPMasq {
		m, err := c.masq(n)
		if err != nil {
			return err
		}
		if err := m.Remove(c.masqKey(n, args)); err != nil {
			return fmt.Errorf("ipMasq: %w", err)
		}
	}
	return nil
}

// CHECK verifies the pod (veth, addresses, routes on both ends), the lease, the masquerade rules and the
// peer state: a missing, changed or stale peer entry fails it, naming the entry.
func (c commands) check(args *skel.CmdArgs) error {
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
		m, err := c.masq(n)
		if err != nil {
			return err
		}
		if err := m.Check(c.masqKey(n, args), masqPrefixes(ips, n.clusterCIDR)); err != nil {
			return fmt.Errorf("ipMasq: %w", err)
		}
	}
	return nil
}

// GC releases the leases and masquerade rules of attachments the runtime no longer lists, and brings the
// peer state up to date (the veths die with their pods' namespaces).
func (c commands) gc(args *skel.CmdArgs) error {
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
		m, err := c.masq(n)
		if err != nil {
			return err
		}
		if err := m.GC(n.Name, valid); err != nil {
			return fmt.Errorf("ipMasq: %w", err)
		}
	}
	nw, err := n.Resolve()
	if err != nil {
		return err
	}
	_, err = nw.Sync()
	return err
}

// STATUS fails (code 50) while the underlay interface is missing or down, or the tunnel device cannot be
// made, and reports the IPAM plugin's status.
func (c commands) status(args *skel.CmdArgs) error {
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
	if _, err := nw.Sync(); err != nil {
		return conf.NotAvailable("%s: %v", c.kind.Plugin, err)
	}
	ipamConf, err := ipamStdin(args.StdinData, n)
	if err != nil {
		return err
	}
	return ipamexec.Status(context.Background(), n.IPAM.Type, ipamConf)
}

func (c commands) masq(n *NetConf) (firewall.Masquerader, error) {
	backend := ""
	if n.IPMasqBackend != nil {
		backend = *n.IPMasqBackend
	}
	m, err := ipmasq.New(backend)
	if err != nil {
		return nil, conf.Invalid("ipMasqBackend", "%v", err)
	}
	return m, nil
}

func (c commands) masqKey(n *NetConf, args *skel.CmdArgs) firewall.Key {
	return firewall.Key{Network: n.Name, ContainerID: args.ContainerID, IfName: args.IfName}
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

func (c commands) logErr(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "netloom %s: %s: %v\n", c.kind.Plugin, what, err)
	}
}
