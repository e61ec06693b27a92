package integration

import (
	"testing"

	"github.com/netloom/netloom/test/harness"
)

// portmap's ADD killed at each of its steps, hairpin (which turns hairpin on for the pod's bridge port)
// included, on a bridge without hairpinMode: the runtime's DEL and GC leave nothing, and a normal ADD
// and DEL work afterwards.
func TestFaultPointsPortmapHairpin(t *testing.T) {
	harness.RequireRoot(t)
	for _, be := range portmapBackends {
		t.Run(be, func(t *testing.T) {
			f := newFaultNet(t, be, true)
			c := faultChain{
				list:      f.conflist(),
				caps:      capArgs(portMapping{hostPorts(1), 80, "tcp", ""}),
				points:    stepPoints("portmap", "rules", "hairpin", "localnet", "conntrack"),
				leftovers: f.leftovers,
			}
			c.killAtEveryPoint(t, "ctr-hpflt-"+be)
		})
	}
}
