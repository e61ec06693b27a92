package hostlink

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
)

func fakeMaster(name, encap string, index, mtu int) netlink.Link {
	a := netlink.NewLinkAttrs()
	a.Name, a.EncapType, a.Index, a.MTU = name, encap, index, mtu
	return &netlink.Device{LinkAttrs: a}
}

func TestMTUFor(t *testing.T) {
	m := fakeMaster("eth9", "ether", 3, 1500)
	if got, err := MTUFor(0, m); got != 1500 || err != nil {
		t.Errorf("MTUFor(0) = %d, %v; want the master's 1500", got, err)
	}
	_, err := MTUFor(9000, m)
	if conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "mtu") || !strings.Contains(err.Error(), "1500") {
		t.Errorf("MTUFor(9000) = %v; want code 7 naming mtu and 1500", err)
	}
}

func TestCreateError(t *testing.T) {
	ether := fakeMaster("eth9", "ether", 3, 1500)
	for _, tc := range []struct {
		name   string
		master netlink.Link
		err    error
		code   uint
		field  string
	}{
		{"kernel lacks the mode", ether, syscall.EOPNOTSUPP, conf.CodeInvalidConfig, "mode"},
		{"non-ethernet master", fakeMaster("tun0", "none", 4, 1500), syscall.EINVAL, conf.CodeInvalidConfig, "master"},
		{"master busy", ether, syscall.EBUSY, conf.CodeInvalidConfig, "master"},
		{"anything else", ether, syscall.ENOMEM, 0, "eth9"},
	} {
		err := CreateError("ipvlan", "l3s", tc.master, tc.err)
		if conf.Code(err) != tc.code || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v; want code %d naming %q", tc.name, err, tc.code, tc.field)
		}
		if tc.code == 0 && !errors.Is(err, tc.err) {
			t.Errorf("%s: %v does not wrap %v", tc.name, err, tc.err)
		}
	}
}

func TestResultInterface(t *testing.T) {
	res := &current.Result{Interfaces: []*current.Interface{{Name: "eth0"}, {Name: "eth0", Sandbox: "/run/netns/a"}}}
	if i, err := ResultInterface(res, "eth0", "/run/netns/a"); i != 1 || err != nil {
		t.Errorf("ResultInterface = %d, %v; want 1", i, err)
	}
	if _, err := ResultInterface(res, "eth1", "/run/netns/a"); conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "prevResult") {
		t.Errorf("missing interface: %v; want code 7 naming prevResult", err)
	}
}

func TestCheckStacked(t *testing.T) {
	master := fakeMaster("eth9", "ether", 3, 1500)
	a := netlink.NewLinkAttrs()
	a.Name, a.ParentIndex = "eth0", 3
	a.HardwareAddr = []byte{0x0a, 0, 0, 0, 0, 1}
	l := &netlink.IPVlan{LinkAttrs: a}
	if err := CheckStacked(l, master, "0a:00:00:00:00:01"); err != nil {
		t.Errorf("matching link: %v", err)
	}
	if err := CheckStacked(l, nil, ""); err != nil {
		t.Errorf("unknown master: %v", err)
	}
	if err := CheckStacked(l, fakeMaster("eth8", "ether", 4, 1500), ""); err == nil || !strings.Contains(err.Error(), "eth8") {
		t.Errorf("other master: %v", err)
	}
	if err := CheckStacked(l, master, "0a:00:00:00:00:02"); err == nil || !strings.Contains(err.Error(), "MAC") {
		t.Errorf("other MAC: %v", err)
	}
}
