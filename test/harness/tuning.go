package harness

import (
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// AddWithArgs is Add with CNI_ARGS (libcni's RuntimeConf.Args: "K1=V1;K2=V2" for every plugin of the
// list), as a runtime passes e.g. MAC=... or K8S_POD_NAME=....
func (r *Runtime) AddWithArgs(t testing.TB, conf []byte, containerID, netnsPath, ifName string, cniArgs [][2]string, capArgs map[string]any) (types.Result, error) {
	t.Helper()
	list, ctx, cancel, err := r.prepare(conf)
	if err != nil {
		return nil, err
	}
	defer cancel()
	return r.cni.AddNetworkList(ctx, list, runtimeConfWithArgs(containerID, netnsPath, ifName, cniArgs, capArgs))
}

// CheckWithArgs is Check with CNI_ARGS.
func (r *Runtime) CheckWithArgs(t testing.TB, conf []byte, containerID, netnsPath, ifName string, cniArgs [][2]string, capArgs map[string]any) error {
	t.Helper()
	list, ctx, cancel, err := r.prepare(conf)
	if err != nil {
		return err
	}
	defer cancel()
	return r.cni.CheckNetworkList(ctx, list, runtimeConfWithArgs(containerID, netnsPath, ifName, cniArgs, capArgs))
}

// DelWithArgs is Del with CNI_ARGS.
func (r *Runtime) DelWithArgs(t testing.TB, conf []byte, containerID, netnsPath, ifName string, cniArgs [][2]string, capArgs map[string]any) error {
	t.Helper()
	list, ctx, cancel, err := r.prepare(conf)
	if err != nil {
		return err
	}
	defer cancel()
	return r.cni.DelNetworkList(ctx, list, runtimeConfWithArgs(containerID, netnsPath, ifName, cniArgs, capArgs))
}

func runtimeConfWithArgs(containerID, netnsPath, ifName string, cniArgs [][2]string, capArgs map[string]any) *libcni.RuntimeConf {
	rc := runtimeConf(containerID, netnsPath, ifName, capArgs)
	rc.Args = cniArgs
	return rc
}
