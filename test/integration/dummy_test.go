package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/test/harness"
)

// dummyConflist is a dummy network with a static address of the test-only range 10.234.x.0/24.
func dummyConflist(cniVersion string, x int) []byte {
	out, _ := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": harness.Unique("dmnet"), "plugins": []any{map[string]any{
		"type": "dummy", "ipam": map[string]any{"type": "static", "addresses": []any{map[string]any{"address": fmt.Sprintf("10.234.%d.5/24", x)}},
			"routes": []any{map[string]any{"dst": "192.168.234.0/24"}}}}}})
	return out
}

// The VM lane (this kernel has no dummy links): every CNI version's ADD, CHECK and DEL twice; a dummy
// the reference made is CHECKed and removed by netloom; bad input is coded.
func TestVMDummy(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireKernelFeature(t, "dummy links", harness.LinkKindAvailable(t, "dummy"))
	for i, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			list := dummyConflist(v, i)
			rt := harness.NewRuntime(t)
			pod := harness.NewNetNS(t, "dmpod")
			id, _ := addAttachment(t, rt, list, pod, "dummy0", nil)
			addr := fmt.Sprintf("10.234.%d.5", i)
			if out := pod.Run(t, "ip", "-d", "addr", "show", "dev", "dummy0"); !strings.Contains(out, "dummy") || !strings.Contains(out, "inet "+addr+"/24") {
				t.Errorf("dummy0:\n%s", out)
			}
			if out := pod.Run(t, "ip", "-4", "route", "show", "192.168.234.0/24"); !strings.Contains(out, "dev dummy0") {
				t.Errorf("route: %q", out)
			}
			pod.Run(t, "ip", "link", "set", "lo", "up")
			if err := harness.Ping(t, pod, addr); err != nil {
				t.Errorf("the pod's own dummy address: %v", err)
			}
			finishAttachment(t, rt, list, v, id, pod, "dummy0", nil, nil)
		})
	}
	t.Run("reference ADD, netloom CHECK and DEL", func(t *testing.T) {
		requireReferenceAdopted(t, "dummy", dummyConflist("1.1.0", 9), harness.NewNetNS(t, "dmpod"), "dummy0")
	})
	t.Run("bad input", func(t *testing.T) {
		pod := harness.NewNetNS(t, "dmpod")
		for _, tc := range []struct {
			stdin, field string
			code         uint
		}{
			{`{"cniVersion":"1.1.0","name":"d","type":"dummy"}`, "ipam", conf.CodeInvalidConfig},
			{`{"cniVersion":"1.1.0","name":"d","type":"dummy","ipam":{"type":"static","addresses":[{"address":"x"}]}}`, "ipam.addresses[0]", conf.CodeInvalidConfig},
		} {
			out, err := harness.RunPlugin(t, "dummy", harness.CNIEnv("ADD", "ctr1", pod.Path, "dummy0", ""), []byte(tc.stdin))
			if e, ok := harness.CNIError(out); err == nil || !ok || e.Code != tc.code || !strings.Contains(e.Msg, tc.field) {
				t.Errorf("ADD %s: %v %s; want code %d naming %q", tc.stdin, err, out, tc.code, tc.field)
			}
			requireNoLink(t, pod, "dummy0", "after a failed ADD")
		}
	})
}

// Killed at every step of ADD (host-local leasing), then DEL and GC: no dummy, no lease.
func TestVMFaultPointsDummy(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireKernelFeature(t, "dummy links", harness.LinkKindAvailable(t, "dummy"))
	dataDir := t.TempDir()
	network := harness.Unique("dmflt")
	list, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": network, "plugins": []any{map[string]any{
		"type": "dummy", "ipam": map[string]any{"type": "host-local", "dataDir": dataDir, "ranges": []any{[]any{map[string]string{"subnet": "10.234.99.0/24"}}}}}}})
	faultChain{list: list, points: stepPoints("dummy", "create", "allocate", "configure"), leftovers: podAndLeases(dataDir, network)}.killAtEveryPoint(t, "dm")
}
