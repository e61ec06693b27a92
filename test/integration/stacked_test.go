package integration

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/test/harness"
)

// stackedNet is a test network of a plugin that stacks a link on a master (macvlan, ipvlan).
type stackedNet interface {
	netconf() []byte
	leases(t *testing.T) []string
	extra() map[string]any
	ipam() map[string]any
}

func (m *macvlanNet) extra() map[string]any { return m.Extra }
func (m *macvlanNet) ipam() map[string]any  { return m.plugin()["ipam"].(map[string]any) }
func (v *ipvlanNet) extra() map[string]any  { return v.Extra }
func (v *ipvlanNet) ipam() map[string]any   { return v.plugin()["ipam"].(map[string]any) }

// badInput is one bad configuration and the CNI error it must give.
type badInput struct {
	name   string
	extra  map[string]any
	code   uint
	naming []string
	delOK  bool // DEL of the failed attachment succeeds (its config parses; only the master is wrong)
}

// testStackedBadInput checks, for plugin, that each bad input gives a CNI error naming the key and
// leaves no link and no lease, and that a failure after the link exists (a route whose gateway is not
// on the pod's subnet) removes the link and releases the IP.
func testStackedBadInput(t *testing.T, plugin string, newNet func(t *testing.T) stackedNet, cases []badInput) {
	run := func(t *testing.T, s stackedNet) (harness.NetNS, map[string]string, []byte, error) {
		n := harness.NewNetNS(t, "bad")
		env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-bad", "CNI_NETNS": n.Path, "CNI_IFNAME": "eth0"}
		out, err := harness.RunPlugin(t, plugin, env, s.netconf())
		return n, env, out, err
	}
	nothingLeft := func(t *testing.T, s stackedNet, n harness.NetNS) {
		t.Helper()
		if l := s.leases(t); len(l) != 0 {
			t.Errorf("leases left: %v", l)
		}
		if o := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(o, "eth0") || strings.Contains(o, "nltmp") {
			t.Errorf("interface left in the pod: %s", o)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newNet(t)
			for k, v := range c.extra {
				s.extra()[k] = v
			}
			n, env, out, err := run(t, s)
			wantCNIError(t, out, err, c.code, c.naming...)
			nothingLeft(t, s, n)
			// A runtime sends DEL after a failed ADD; it must not need the master.
			if c.delOK {
				env["CNI_COMMAND"] = "DEL"
				if out, err := harness.RunPlugin(t, plugin, env, s.netconf()); err != nil {
					t.Errorf("DEL after a failed ADD: %v: %s", err, out)
				}
			}
		})
	}
	t.Run("rollback after the link exists", func(t *testing.T) {
		t.Parallel()
		s := newNet(t)
		ipam := s.ipam()
		ipam["routes"] = []any{map[string]string{"dst": "10.99.0.0/16", "gw": "192.0.2.1"}}
		s.extra()["ipam"] = ipam
		n, _, out, err := run(t, s)
		if err == nil {
			t.Fatalf("ADD with an unreachable route gateway succeeded: %s", out)
		} else if !strings.Contains(string(out), "192.0.2.1") {
			t.Errorf("ADD failed, but not at the route: %s", out)
		}
		nothingLeft(t, s, n)
	})
}
