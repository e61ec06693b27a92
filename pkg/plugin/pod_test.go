package plugin

import (
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netloom/netloom/pkg/conf"
)

// A CNI_NETNS that cannot be opened is the runtime's mistake (code 4), and add never runs.
func TestAddInPodBadNetns(t *testing.T) {
	for _, path := range []string{"", "/nonexistent/netloom-netns"} {
		ran := false
		err := AddInPod(path, "1.0.0", func(ns.NetNS) (*current.Result, error) { ran = true; return nil, nil })
		if conf.Code(err) != conf.CodeInvalidEnvironment || ran {
			t.Errorf("AddInPod(%q): err %v (code %d), add ran: %v; want code %d, not run", path, err, conf.Code(err), ran, conf.CodeInvalidEnvironment)
		}
	}
}
