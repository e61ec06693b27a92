package integration

import (
	"testing"

	"github.com/netloom/netloom/test/harness"
)

// TestVMKernelFeatures proves the VM lane boots a kernel with what the tests that run there need:
// dummy links, ipvlan in each mode on top of one, and an ipip tunnel. On this machine's kernel it skips
// (naming the lane); inside the VM (make test-vm) a missing feature fails it.
func TestVMKernelFeatures(t *testing.T) {
	harness.RequireRoot(t)
	n := harness.NewNetNS(t, "vmfeat")

	// probe creates a link in the namespace and reports whether the kernel could; the output of a
	// failure is logged so a failure inside the VM says why.
	probe := func(feature string, cmd ...string) {
		t.Helper()
		_, err := n.Exec(cmd...)
		if err != nil {
			t.Logf("%s: %v", feature, err)
		}
		harness.RequireKernelFeature(t, feature, err == nil)
	}
	probe("dummy links", "ip", "link", "add", "d0", "type", "dummy")
	for _, mode := range []string{"l2", "l3", "l3s"} {
		probe("ipvlan mode "+mode, "ip", "link", "add", "link", "d0", "name", "iv-"+mode, "type", "ipvlan", "mode", mode)
	}
	probe("ipip tunnels", "ip", "link", "add", "t0", "type", "ipip", "local", "192.0.2.1", "remote", "192.0.2.2")
	n.Run(t, "ip", "link", "set", "d0", "up")
	n.Run(t, "ip", "link", "set", "iv-l2", "up")
	n.Run(t, "ip", "link", "set", "t0", "up")
}
