package harness

import (
	"os"
	"testing"
)

// InVM tells whether the test runs inside the VM lane (test/vm), which boots a stock Debian kernel for
// the features this machine's kernel lacks (ipvlan, ipip, dummy, 802.1q, vrf, ...).
func InVM() bool { return os.Getenv("NETLOOM_IN_VM") == "1" }

// RequireKernelFeature lets t run only where the kernel has feature (available is the result of the
// caller's probe). On a kernel without it the test skips with a message naming the VM lane, which
// `make test` always runs, so the test is never skipped silently: inside the VM a missing feature fails.
func RequireKernelFeature(t testing.TB, feature string, available bool) {
	t.Helper()
	if available {
		return
	}
	if InVM() {
		t.Fatalf("the VM's kernel lacks %s", feature)
	}
	t.Skipf("this kernel lacks %s: the test runs in the VM lane (make test-vm)", feature)
}

// LinkKindAvailable reports whether this kernel can make a link of kind (e.g. "ipip", "vxlan") that
// needs no parent: it tries `ip link add nlprobe0 type KIND ARGS...` in a throwaway namespace, which also
// loads the module where modules load on demand. Give ARGS that make the link differ from a kind's
// fallback device: a bare "ipip" is the module's own tunl0 and fails with "File exists", so probe ipip
// with "local", "192.0.2.1".
func LinkKindAvailable(t testing.TB, kind string, args ...string) bool {
	t.Helper()
	n := NewNetNS(t, "probe")
	defer n.Delete(t)
	_, err := n.Exec(append([]string{"ip", "link", "add", "nlprobe0", "type", kind}, args...)...)
	return err == nil
}
