package integration

import (
	"testing"

	"github.com/netloom/netloom/test/harness"
)

// TestReferencePluginsBuilt installs every reference plugin the tests compare with. `make test-vm` runs
// it on the host before the VM boots: the VM has no network for `go install`, and sees the host's
// builds (under the host's temp dir) through its read-only view of the host's root.
func TestReferencePluginsBuilt(t *testing.T) {
	for _, name := range harness.ReferencePluginNames() {
		harness.ReferencePlugin(t, name)
	}
}
