package harness

import (
	"fmt"
	"testing"

	"github.com/safchain/ethtool"
)

// Offloads returns the offload features of the device called name in n, as `ethtool -k` lists them
// (keyed by the kernel's feature names: "rx-gro", "tx-generic-segmentation", "tx-tcp-segmentation",
// "tx-checksum-ip-generic", ...), read through the ethtool ioctl so the test needs no ethtool binary.
func Offloads(t testing.TB, n NetNS, name string) map[string]bool {
	t.Helper()
	var features map[string]bool
	err := n.Do(func() error {
		// The ioctl acts in the namespace of the socket, made here inside n.
		e, err := ethtool.NewEthtool()
		if err != nil {
			return err
		}
		defer e.Close()
		features, err = e.Features(name)
		return err
	})
	if err != nil {
		t.Fatalf("%s: offload features of %s: %v", n.Name, name, err)
	}
	return features
}

// MissingOffloads returns which of want are off (or unknown) on name in n, each as "feature: off".
func MissingOffloads(t testing.TB, n NetNS, name string, want ...string) []string {
	t.Helper()
	have := Offloads(t, n, name)
	var missing []string
	for _, f := range want {
		if on, ok := have[f]; !ok {
			missing = append(missing, fmt.Sprintf("%s: unknown", f))
		} else if !on {
			missing = append(missing, fmt.Sprintf("%s: off", f))
		}
	}
	return missing
}
