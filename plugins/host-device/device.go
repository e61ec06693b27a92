package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
)

// userspaceDrivers are the PCI drivers that hand a NIC to userspace (DPDK): such a device has no
// kernel interface to move, and the attachment only reports it.
var userspaceDrivers = []string{"vfio-pci", "uio_pci_generic", "igb_uio"}

// sysfs is where the kernel's device tree is mounted ("/sys"); tests point it elsewhere.
type sysfs string

func (s sysfs) pciDevice(id string) string { return filepath.Join(string(s), "bus/pci/devices", id) }
func (s sysfs) auxDevice(id string) string {
	return filepath.Join(string(s), "bus/auxiliary/devices", id)
}

// source says which key finds the device and how: the reference's order of precedence.
type source struct {
	field string           // the key, for messages
	name  string           // device
	mac   net.HardwareAddr // hwaddr
	dir   string           // the sysfs directory whose net/ holds the interface (kernelpath, pciBusID, deviceID)
	pci   string           // the PCI address, when the device is one (its driver decides DPDK mode)
}

// locate applies the reference's rules: runtimeConfig.deviceID, when set, is the PCI address (when
// sysfs has such a PCI device) or an auxiliary device, replacing pciBusID; then "device" wins over
// "hwaddr", over "kernelpath", over the PCI address, over the auxiliary device.
func (s sysfs) locate(n *NetConf) (source, error) {
	pci, aux := n.PCIBusID, ""
	pciField := "pciBusID"
	if id := n.RuntimeConfig.DeviceID; id != "" {
		switch {
		case exists(s.pciDevice(id)):
			pci, pciField = id, "runtimeConfig.deviceID"
		case exists(s.auxDevice(id)):
			pci, aux = "", id
		default:
			return source{}, conf.Invalid("runtimeConfig.deviceID", "%q is neither a PCI device (%s) nor an auxiliary device (%s)", id, s.pciDevice(id), s.auxDevice(id))
		}
	}
	switch {
	case n.Device != "":
		return source{field: "device", name: n.Device, pci: pci}, nil
	case n.hwaddr != nil:
		return source{field: "hwaddr", mac: n.hwaddr, pci: pci}, nil
	case n.KernelPath != "":
		return source{field: "kernelpath", dir: filepath.Join(string(s), strings.TrimPrefix(filepath.Clean(n.KernelPath), "/sys")), pci: pci}, nil
	case pci != "":
		return source{field: pciField, dir: s.pciDevice(pci), pci: pci}, nil
	case aux != "":
		return source{field: "runtimeConfig.deviceID", dir: s.auxDevice(aux)}, nil
	}
	return source{}, conf.Invalid("device", "no device given; set \"device\", \"hwaddr\", \"kernelpath\" or \"pciBusID\"")
}

// userspaceDriver reports whether PCI device pci is bound to a DPDK driver. Like the reference, a PCI
// device without a driver is an error.
func (s sysfs) userspaceDriver(field, pci string) (bool, error) {
	drv, err := filepath.EvalSymlinks(filepath.Join(s.pciDevice(pci), "driver"))
	if err != nil {
		return false, conf.Invalid(field, "PCI device %q: no driver bound (%v)", pci, err)
	}
	return slices.Contains(userspaceDrivers, filepath.Base(drv)), nil
}

// find returns the host link src names, in the calling namespace. A device that is not there is a
// code-7 error naming src's key.
func (s sysfs) find(src source) (netlink.Link, error) {
	switch {
	case src.name != "":
		l, err := link.ByName(src.name)
		if errors.Is(err, link.ErrNotFound) {
			return nil, conf.Invalid("device", "interface %q does not exist in the host's network namespace", src.name)
		}
		return l, err
	case src.mac != nil:
		links, err := netlinksafe.LinkList()
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		for _, l := range links {
			if bytes.Equal(l.Attrs().HardwareAddr, src.mac) {
				return l, nil
			}
		}
		return nil, conf.Invalid("hwaddr", "no interface in the host's network namespace has MAC %s", src.mac)
	}
	name, err := s.netName(src.dir)
	if err != nil {
		return nil, conf.Invalid(src.field, "%v", err)
	}
	l, err := link.ByName(name)
	if errors.Is(err, link.ErrNotFound) {
		return nil, conf.Invalid(src.field, "the device's interface %q is not in the host's network namespace (already in a container?)", name)
	}
	return l, err
}

// netName returns the first interface under dir/net, or under dir/virtio*/net for a virtio PCI device.
func (s sysfs) netName(dir string) (string, error) {
	netDir := filepath.Join(dir, "net")
	if !exists(netDir) {
		matches, _ := filepath.Glob(filepath.Join(dir, "virtio*", "net"))
		if len(matches) == 0 {
			return "", fmt.Errorf("%s has no network interface (no net/ directory)", dir)
		}
		netDir = matches[0]
	}
	ents, err := os.ReadDir(netDir)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", netDir, err)
	}
	if len(ents) == 0 {
		return "", fmt.Errorf("%s lists no interface", netDir)
	}
	return ents[0].Name(), nil
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }
