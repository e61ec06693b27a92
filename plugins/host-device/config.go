package main

import (
	"net"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/hostlink"
	"github.com/netloom/netloom/pkg/plugin"
)

// NetConf is the host-device plugin's configuration: every key of the reference plugin.
type NetConf struct {
	types.NetConf
	Device     string `json:"device"`
	HWAddr     string `json:"hwaddr"`
	KernelPath string `json:"kernelpath"`
	PCIBusID   string `json:"pciBusID"`
	// DPDKMode has no JSON tag in the reference, so its key is the field's name. It is set at ADD for a
	// pciBusID whose driver is a userspace one; a config may also set it.
	DPDKMode bool `json:"DPDKMode"`

	RuntimeConfig struct {
		DeviceID string `json:"deviceID,omitempty"` // capability "deviceID"
	} `json:"runtimeConfig"`

	hwaddr net.HardwareAddr
}

func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData) }

// parseConfig decodes and validates stdin. Where the device is (sysfs for deviceID and pciBusID) is
// looked up at ADD only: DEL and CHECK find the link in the pod under CNI_IFNAME.
func parseConfig(stdin []byte) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, (*NetConf).validate)
}

func (n *NetConf) validate() error {
	if n.Device == "" && n.HWAddr == "" && n.KernelPath == "" && n.PCIBusID == "" && n.RuntimeConfig.DeviceID == "" {
		return conf.Invalid("device", "no device given; set one of \"device\" (an interface name), \"hwaddr\", \"kernelpath\" or \"pciBusID\", or the runtime's \"deviceID\"")
	}
	if n.Device != "" {
		if err := conf.ValidateIfName("device", n.Device); err != nil {
			return err
		}
	}
	if n.HWAddr != "" {
		mac, err := net.ParseMAC(n.HWAddr)
		if err != nil {
			return conf.Invalid("hwaddr", "%q is not a MAC address; write it as 0a:58:0a:f4:00:05", n.HWAddr)
		}
		n.hwaddr = mac
	}
	if n.KernelPath != "" && (!filepath.IsAbs(n.KernelPath) || !strings.HasPrefix(filepath.Clean(n.KernelPath), "/sys/devices/")) {
		return conf.Invalid("kernelpath", "%q must be an absolute path under /sys/devices/, e.g. /sys/devices/pci0000:00/0000:00:03.0/virtio0", n.KernelPath)
	}
	for _, id := range []struct{ field, v string }{{"pciBusID", n.PCIBusID}, {"runtimeConfig.deviceID", n.RuntimeConfig.DeviceID}} {
		if id.v != "" && (strings.ContainsAny(id.v, "/\x00") || id.v == "." || id.v == "..") {
			return conf.Invalid(id.field, "%q is not a device address; write a PCI address such as 0000:00:03.0 (or an auxiliary device name)", id.v)
		}
	}
	return nil
}

// The hostlink commands' view of the configuration: GC and STATUS are hostlink's.

func (n *NetConf) Net() *types.NetConf { return &n.NetConf }

func (n *NetConf) IPAMType() string { return n.IPAM.Type }

// MasterFor: a host device stacks on nothing.
func (n *NetConf) MasterFor(ns.NetNS) (hostlink.Master, bool) { return hostlink.Master{}, false }

// Inspect accepts any kind of link: the device is whatever the node had.
func (n *NetConf) Inspect(netlink.Link) error { return nil }
