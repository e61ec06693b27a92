package plugin

import (
	"context"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netloom/netloom/pkg/ipamexec"
	"github.com/netloom/netloom/pkg/netns"
)

// AddInPod runs the ADD of a plugin that attaches one interface to the pod: add gets the namespace at
// netnsPath (CNI_NETNS, opened as netns.Open does, closed after), and its result is printed in
// cniVersion.
func AddInPod(netnsPath, cniVersion string, add func(pod ns.NetNS) (*current.Result, error)) error {
	var result *current.Result
	err := netns.With(netnsPath, func(pod ns.NetNS) (err error) {
		result, err = add(pod)
		return err
	})
	if err != nil {
		return err
	}
	return PrintResult(result, cniVersion)
}

// Lease allocates from the IPAM plugin ipamType with the plugin's stdin and marks every address of the
// lease as the result's interface iface. The release is registered as an undo of a before the IPAM ADD
// runs: an IPAM plugin that fails or is killed half-way (a dhcp daemon that got its lease but not its
// answer through) may hold an address all the same, and its DEL is harmless when it holds none.
func (a *Add) Lease(ctx context.Context, ipamType string, stdin []byte, iface int) (*current.Result, error) {
	return a.StartLease(ctx, ipamType, stdin, iface)()
}

// StartLease is Lease in the background: it registers the release, starts the IPAM ADD and returns at
// once; the function it returns waits for the lease. The ADD's own steps go on meanwhile: a node-local
// IPAM plugin (host-local, static) needs nothing they make, and its process start is most of an
// allocation. The release waits for the IPAM ADD to finish first, so a rollback that comes before the
// lease does not release too early and leave the lease behind.
func (a *Add) StartLease(ctx context.Context, ipamType string, stdin []byte, iface int) (wait func() (*current.Result, error)) {
	var (
		l3       *current.Result
		err      error
		finished = make(chan struct{})
	)
	a.OnFailure("release IP", func() error {
		<-finished
		return ipamexec.Del(ctx, ipamType, stdin)
	})
	go func() {
		defer close(finished)
		l3, err = ipamexec.Add(ctx, ipamType, stdin)
	}()
	return func() (*current.Result, error) {
		<-finished
		if err != nil {
			return nil, err
		}
		for _, ipc := range l3.IPs {
			ipc.Interface = current.Int(iface)
		}
		return l3, nil
	}
}

// LeaseInto is Lease for an attachment whose IPAM plugin is optional: with ipamType "" it does nothing
// and returns nil; otherwise the lease's addresses, routes and DNS become result's.
func (a *Add) LeaseInto(ctx context.Context, ipamType string, stdin []byte, result *current.Result, iface int) (*current.Result, error) {
	if ipamType == "" {
		return nil, nil
	}
	l3, err := a.Lease(ctx, ipamType, stdin, iface)
	if err != nil {
		return nil, err
	}
	result.IPs, result.Routes, result.DNS = l3.IPs, l3.Routes, l3.DNS
	return l3, nil
}
