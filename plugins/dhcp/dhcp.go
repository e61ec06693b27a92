package main

import (
	"fmt"
	"log"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/dhcp"
	"github.com/netloom/netloom/pkg/netns"
	"github.com/netloom/netloom/pkg/plugin"
)

// cmdAdd asks the daemon for the attachment's lease (it runs the DHCP exchange inside the pod's
// namespace and keeps renewing the lease) and reports the address, gateway, routes and DNS.
func cmdAdd(c *dhcp.NetConf, args *plugin.Args) error {
	if err := requireNetNS(args.Netns); err != nil {
		return err
	}
	socket := c.IPAM.SocketPath()
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	var add plugin.Add
	err := add.Run(plugin.Do("lease", func() error {
		if err := dhcp.Call(socket, dhcp.MethodAllocate, args, result); err != nil {
			return unreachable(err, conf.CodeTryAgainLater)
		}
		add.OnFailure("release the lease", func() error { return dhcp.Call(socket, dhcp.MethodRelease, args, &struct{}{}) })
		return nil
	}))
	if err != nil {
		return err
	}
	return plugin.PrintResult(result, c.CNIVersion)
}

// cmdDel has the daemon stop renewing the lease and release it. With no daemon at all (no socket, or
// nobody listening) nothing holds a lease: DEL succeeds, where the reference fails and blocks the pod's
// removal until a daemon runs.
func cmdDel(c *dhcp.NetConf, args *plugin.Args) error {
	socket := c.IPAM.SocketPath()
	err := dhcp.Call(socket, dhcp.MethodRelease, args, &struct{}{})
	if dhcp.NoDaemon(err) {
		log.Printf("DEL: %v; nothing holds a lease, so there is nothing to release", err)
		return nil
	}
	return unreachable(err, conf.CodeTryAgainLater)
}

// cmdCheck asks the daemon for the lease as the reference does (a daemon restarted since the ADD
// acquires it again, with the same client identifier, so the same address) and checks that its
// address is the one the ADD reported.
func cmdCheck(c *dhcp.NetConf, args *plugin.Args) error {
	prev, err := conf.CheckPrevResult(&c.NetConf)
	if err != nil {
		return err
	}
	if err := requireNetNS(args.Netns); err != nil {
		return err
	}
	got := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if err := dhcp.Call(c.IPAM.SocketPath(), dhcp.MethodAllocate, args, got); err != nil {
		return unreachable(err, conf.CodeTryAgainLater)
	}
	return sameLease(prev, got)
}

// sameLease returns why the daemon's lease differs from the ADD's result, or nil.
func sameLease(prev, got *current.Result) error {
	if len(got.IPs) == 0 {
		return fmt.Errorf("CHECK: the dhcp daemon reports no address")
	}
	have := got.IPs[0].Address
	for _, ip := range prev.IPs {
		if ip.Address.IP.Equal(have.IP) && net.IP(ip.Address.Mask).Equal(net.IP(have.Mask)) {
			return nil
		}
	}
	return fmt.Errorf("CHECK: the DHCP lease is now %s, not the address the ADD reported (%v)", have.String(), prevAddrs(prev))
}

func prevAddrs(r *current.Result) []string {
	var out []string
	for _, ip := range r.IPs {
		out = append(out, ip.Address.String())
	}
	return out
}

// cmdGC has the daemon release this network's leases of attachments that are not valid any more. A
// reference daemon has no GC: its leases end with DEL only.
func cmdGC(c *dhcp.NetConf, args *plugin.Args) error {
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	req := &dhcp.GCRequest{Network: c.Name}
	for a := range valid {
		req.Valid = append(req.Valid, a)
	}
	err = dhcp.GC(c.IPAM.SocketPath(), req)
	if dhcp.NoDaemon(err) {
		return nil
	}
	return unreachable(err, conf.CodeTryAgainLater)
}

// cmdStatus reports whether the daemon answers on its socket: without it no ADD can succeed.
func cmdStatus(c *dhcp.NetConf, _ *plugin.Args) error {
	if err := dhcp.Ping(c.IPAM.SocketPath()); err != nil {
		return conf.NotAvailable("%v", err)
	}
	return nil
}

// unreachable gives an unreachable-daemon error the code the command reports it with; other errors
// keep theirs.
func unreachable(err error, code uint) error {
	if _, ok := err.(*dhcp.UnreachableError); ok {
		return types.NewError(code, err.Error(), "")
	}
	return err
}

// requireNetNS fails with code 4 when CNI_NETNS does not name a network namespace: the daemon could only
// say so after a round trip, in fewer words.
func requireNetNS(path string) error {
	h, err := netns.Open(path)
	if err != nil {
		return err
	}
	return h.Close()
}
