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

// Lease allocates from the IPAM plugin ipamType with the plugin's stdin, registers the release as an
// undo of a, and marks every address of the lease as the result's interface iface.
func (a *Add) Lease(ctx context.Context, ipamType string, stdin []byte, iface int) (*current.Result, error) {
	l3, err := ipamexec.Add(ctx, ipamType, stdin)
	if err != nil {
		return nil, err
	}
	a.OnFailure("release IP", func() error { return ipamexec.Del(ctx, ipamType, stdin) })
	for _, ipc := range l3.IPs {
		ipc.Interface = current.Int(iface)
	}
	return l3, nil
}
