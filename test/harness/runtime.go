package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
)

// opTimeout bounds one CNI operation, so a hung plugin fails its test instead of the whole run.
const opTimeout = 2 * time.Minute

// Runtime drives plugins through libcni as containerd and CRI-O do: it fills in prevResult, caches
// results and injects runtimeConfig for the capabilities a plugin declares.
type Runtime struct {
	Path     []string // the plugin directory first, then any extra directories
	CacheDir string   // libcni's result cache, private to the test
	Env      []string // KEY=VALUE added to every plugin's environment (WithEnv)
	cni      *libcni.CNIConfig
}

// newCNIConfig is libcni's view of a runtime that finds plugins in path, caches results in cacheDir
// and adds env to each plugin's environment.
func newCNIConfig(path []string, cacheDir string, env []string) *libcni.CNIConfig {
	var exec invoke.Exec // nil: libcni's default
	if len(env) > 0 {
		exec = envExec{DefaultExec: &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}}, env: env}
	}
	return libcni.NewCNIConfigWithCacheDir(path, cacheDir, exec)
}

// envExec runs plugins as libcni does, with env appended to the environment libcni gives them (a later
// KEY=VALUE wins over this process's own).
type envExec struct {
	*invoke.DefaultExec
	env []string
}

func (e envExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	return e.DefaultExec.ExecPlugin(ctx, pluginPath, stdin, append(slices.Clip(environ), e.env...))
}

// WithEnv returns a runtime that shares r's plugin path and result cache and gives every plugin env
// (KEY=VALUE) on top of this process's environment: a node whose plugins reach a service this test
// started, e.g. DBUS_SYSTEM_BUS_ADDRESS for a private firewalld. Unlike t.Setenv it leaves the
// process alone, so tests that use it can run in parallel.
func (r *Runtime) WithEnv(env ...string) *Runtime {
	all := append(slices.Clip(r.Env), env...)
	return &Runtime{Path: r.Path, CacheDir: r.CacheDir, Env: all, cni: newCNIConfig(r.Path, r.CacheDir, all)}
}

// NewRuntime returns a runtime that finds plugins in PluginDir and then in dirs (e.g. a directory with
// a reference plugin), with a result cache private to t.
func NewRuntime(t testing.TB, dirs ...string) *Runtime {
	t.Helper()
	path := append([]string{PluginDir(t)}, dirs...)
	cache := t.TempDir()
	return &Runtime{Path: path, CacheDir: cache, cni: newCNIConfig(path, cache, nil)}
}

// NewRuntimeWithPath returns a runtime that finds plugins only in dirs, e.g. the reference plugins'
// directories, to measure or compare them under the same conditions as netloom's.
func NewRuntimeWithPath(t testing.TB, dirs ...string) *Runtime {
	t.Helper()
	cache := t.TempDir()
	return &Runtime{Path: dirs, CacheDir: cache, cni: newCNIConfig(dirs, cache, nil)}
}

// ParseConfList parses a conflist, or a single plugin's config which it wraps into a one-plugin list
// (as a runtime does with a .conf file).
func ParseConfList(conf []byte) (*libcni.NetworkConfigList, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(conf, &probe); err != nil {
		return nil, fmt.Errorf("parse network config: %w", err)
	}
	if _, ok := probe["plugins"]; !ok {
		wrapped, err := json.Marshal(map[string]any{
			"cniVersion": probe["cniVersion"], "name": probe["name"], "plugins": []json.RawMessage{conf},
		})
		if err != nil {
			return nil, err
		}
		conf = wrapped
	}
	return libcni.NetworkConfFromBytes(conf)
}

func (r *Runtime) prepare(conf []byte) (*libcni.NetworkConfigList, context.Context, context.CancelFunc, error) {
	list, err := ParseConfList(conf)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, p := range list.Plugins {
		if err := requirePlugin(r.Path[0], p.Network.Type); err != nil && len(r.Path) == 1 {
			return nil, nil, nil, err
		}
	}
	// Not t.Context(): that is cancelled before cleanups run, and cleanups call Del.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	return list, ctx, cancel, nil
}

func runtimeConf(containerID, netnsPath, ifName string, capArgs map[string]any) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: containerID, NetNS: netnsPath, IfName: ifName, CapabilityArgs: capArgs}
}

// Add runs ADD of the whole list for one attachment and returns the result in the list's cniVersion.
// It may be called from several goroutines at once.
func (r *Runtime) Add(t testing.TB, conf []byte, containerID, netnsPath, ifName string, capArgs map[string]any) (types.Result, error) {
	t.Helper()
	list, ctx, cancel, err := r.prepare(conf)
	if err != nil {
		return nil, err
	}
	defer cancel()
	return r.cni.AddNetworkList(ctx, list, runtimeConf(containerID, netnsPath, ifName, capArgs))
}

// Check runs CHECK of the whole list with the prevResult libcni cached at ADD.
func (r *Runtime) Check(t testing.TB, conf []byte, containerID, netnsPath, ifName string, capArgs map[string]any) error {
	t.Helper()
	list, ctx, cancel, err := r.prepare(conf)
	if err != nil {
		return err
	}
	defer cancel()
	return r.cni.CheckNetworkList(ctx, list, runtimeConf(containerID, netnsPath, ifName, capArgs))
}

// Del runs DEL of the whole list in reverse order.
func (r *Runtime) Del(t testing.TB, conf []byte, containerID, netnsPath, ifName string, capArgs map[string]any) error {
	t.Helper()
	list, ctx, cancel, err := r.prepare(conf)
	if err != nil {
		return err
	}
	defer cancel()
	return r.cni.DelNetworkList(ctx, list, runtimeConf(containerID, netnsPath, ifName, capArgs))
}

// GC does what a runtime's garbage collection does: libcni first sends DEL for every attachment in its
// cache that is not in valid, then (cniVersion 1.1.0 and later) GC to each plugin with valid as
// cni.dev/valid-attachments.
func (r *Runtime) GC(t testing.TB, conf []byte, valid []types.GCAttachment) error {
	t.Helper()
	list, ctx, cancel, err := r.prepare(conf)
	if err != nil {
		return err
	}
	defer cancel()
	return r.cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid})
}

// GCOnly sends only the plugins' GC, without libcni's DELs of cached attachments, as after a runtime
// lost its cache: the plugins alone must find and release what is not in valid.
func (r *Runtime) GCOnly(t testing.TB, conf []byte, valid []types.GCAttachment) error {
	t.Helper()
	list, ctx, cancel, err := r.prepare(conf)
	if err != nil {
		return err
	}
	defer cancel()
	empty := newCNIConfig(r.Path, t.TempDir(), r.Env)
	return empty.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid})
}

// Status runs STATUS of each plugin in the list (cniVersion 1.1.0 and later; earlier versions have
// none and succeed).
func (r *Runtime) Status(t testing.TB, conf []byte) error {
	t.Helper()
	list, ctx, cancel, err := r.prepare(conf)
	if err != nil {
		return err
	}
	defer cancel()
	return r.cni.GetStatusNetworkList(ctx, list)
}
