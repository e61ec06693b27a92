package harness

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// WithPath returns a runtime that shares r's result cache but finds plugins only in dirs: the node after
// its plugin binaries were switched (ADD by the reference suite with r, then CHECK and DEL by netloom's
// with r.WithPath(t, PluginDir(t))), the cached prevResults carrying over as they do on a real node.
func (r *Runtime) WithPath(t testing.TB, dirs ...string) *Runtime {
	t.Helper()
	return &Runtime{Path: dirs, CacheDir: r.CacheDir, Env: r.Env, cni: newCNIConfig(dirs, r.CacheDir, r.Env)}
}

// CNIEnv is the environment a runtime gives a plugin for one command (RunPlugin's env); cniArgs is
// CNI_ARGS, left out when empty.
func CNIEnv(command, containerID, netnsPath, ifName, cniArgs string) map[string]string {
	env := map[string]string{"CNI_COMMAND": command, "CNI_CONTAINERID": containerID, "CNI_NETNS": netnsPath, "CNI_IFNAME": ifName}
	if cniArgs != "" {
		env["CNI_ARGS"] = cniArgs
	}
	return env
}

// CNIError decodes the CNI error a plugin printed on stdout; ok is false when out is not one (a
// result, or nothing).
func CNIError(out []byte) (e types.Error, ok bool) {
	if json.Unmarshal(out, &e) != nil || e.Code == 0 {
		return types.Error{}, false
	}
	return e, true
}

// HostRun runs a command in the host's namespace and fails t when it fails; it returns the output.
func HostRun(t testing.TB, cmd ...string) string {
	t.Helper()
	out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(cmd, " "), err, out)
	}
	return string(out)
}
