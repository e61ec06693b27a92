package link

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/test/harness"
)

func TestPortHairpin(t *testing.T) {
	harness.RequireRoot(t)
	host := harness.NewNetNS(t, "hphost")
	host.Run(t, "ip", "link", "add", "br0", "type", "bridge")
	host.Run(t, "ip", "link", "add", "dev0", "type", "veth", "peer", "name", "dev1")
	hairpin := func(name string) bool {
		t.Helper()
		var on bool
		err := host.Do(func() error {
			l, err := ByName(name)
			if err != nil {
				return err
			}
			if on, err = PortHairpin(l.Attrs().Index); err != nil {
				return err
			}
			// PortByName reads the same in one request, and says whether the link is a port.
			p, err := PortByName(name)
			if want := (BridgePort{Index: l.Attrs().Index, OnPort: l.Attrs().MasterIndex != 0, Hairpin: on}); err != nil || p != want {
				t.Errorf("PortByName(%s) = %+v, %v; want %+v", name, p, err, want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("PortHairpin(%s): %v", name, err)
		}
		return on
	}
	if hairpin("dev0") {
		t.Error("a veth on no bridge reports hairpin on")
	}
	if hairpin("br0") {
		t.Error("the bridge itself reports hairpin on")
	}
	if err := host.Do(func() error { _, err := PortByName("nosuch0"); return err }); err == nil || !strings.Contains(err.Error(), `"nosuch0"`) {
		t.Errorf("PortByName of a missing link: %v, want an error naming it", err)
	}
	host.Run(t, "ip", "link", "set", "dev0", "master", "br0")
	if hairpin("dev0") {
		t.Error("a new bridge port reports hairpin on")
	}
	host.Run(t, "ip", "link", "set", "dev0", "type", "bridge_slave", "hairpin", "on")
	if !hairpin("dev0") {
		t.Error("hairpin set with ip link: PortHairpin says off")
	}
	host.Run(t, "ip", "link", "set", "dev0", "type", "bridge_slave", "hairpin", "off")
	if hairpin("dev0") {
		t.Error("hairpin turned off with ip link: PortHairpin says on")
	}
}
