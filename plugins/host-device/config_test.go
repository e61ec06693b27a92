package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"host-device"`
	for _, tc := range []struct {
		name  string
		json  string
		code  uint   // 0: valid
		field string // must appear in the error message
	}{
		{name: "device", json: `{` + base + `,"device":"eth1"}`},
		{name: "hwaddr", json: `{` + base + `,"hwaddr":"0a:58:0a:f4:00:05","ipam":{"type":"host-local"}}`},
		{name: "kernelpath", json: `{` + base + `,"kernelpath":"/sys/devices/pci0000:00/0000:00:03.0/virtio0"}`},
		{name: "pciBusID", json: `{` + base + `,"pciBusID":"0000:00:03.0"}`},
		{name: "deviceID alone", json: `{` + base + `,"runtimeConfig":{"deviceID":"0000:00:03.0"}}`},
		{name: "nothing", json: `{` + base + `}`, code: conf.CodeInvalidConfig, field: "device"},
		{name: "device name too long", json: `{` + base + `,"device":"abcdefghijklmnop"}`, code: conf.CodeInvalidConfig, field: "device"},
		{name: "bad hwaddr", json: `{` + base + `,"hwaddr":"zz"}`, code: conf.CodeInvalidConfig, field: "hwaddr"},
		{name: "relative kernelpath", json: `{` + base + `,"kernelpath":"sys/devices/x"}`, code: conf.CodeInvalidConfig, field: "kernelpath"},
		{name: "kernelpath outside /sys/devices", json: `{` + base + `,"kernelpath":"/sys/devices/../class/net"}`, code: conf.CodeInvalidConfig, field: "kernelpath"},
		{name: "pciBusID with slash", json: `{` + base + `,"pciBusID":"../../x"}`, code: conf.CodeInvalidConfig, field: "pciBusID"},
		{name: "deviceID dot-dot", json: `{` + base + `,"runtimeConfig":{"deviceID":".."}}`, code: conf.CodeInvalidConfig, field: "runtimeConfig.deviceID"},
		{name: "device wrong type", json: `{` + base + `,"device":1}`, code: conf.CodeInvalidConfig, field: "device"},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.json))
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

// fakeSysfs builds a sysfs with a kernel-driven PCI NIC (0000:00:03.0, interface ens3), a virtio one
// (0000:00:04.0, ens4 under virtio1/), a DPDK-bound one (0000:00:05.0), a PCI device without a driver
// (0000:00:06.0) and an auxiliary device (mlx5_core.sf.2, interface enp3s0f0s2).
func fakeSysfs(t *testing.T) sysfs {
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		if err := os.Symlink(filepath.Join(root, target), filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bus/pci/drivers/e1000", "bus/pci/drivers/vfio-pci", "bus/pci/drivers/virtio-pci",
		"bus/pci/devices/0000:00:03.0/net/ens3", "bus/pci/devices/0000:00:04.0/virtio1/net/ens4", "bus/pci/devices/0000:00:05.0",
		"bus/pci/devices/0000:00:06.0", "bus/auxiliary/devices/mlx5_core.sf.2/net/enp3s0f0s2", "devices/pci0000:00/0000:00:07.0/net/ens7"} {
		mk(d)
	}
	link("bus/pci/drivers/e1000", "bus/pci/devices/0000:00:03.0/driver")
	link("bus/pci/drivers/virtio-pci", "bus/pci/devices/0000:00:04.0/driver")
	link("bus/pci/drivers/vfio-pci", "bus/pci/devices/0000:00:05.0/driver")
	return sysfs(root)
}

func TestLocate(t *testing.T) {
	fs := fakeSysfs(t)
	for _, tc := range []struct {
		name     string
		json     string
		field    string // the key that finds the device
		netName  string // the interface sysfs names ("" for device/hwaddr)
		dpdk     bool
		errField string
	}{
		{name: "device beats everything", json: `"device":"eth9","hwaddr":"0a:00:00:00:00:01","pciBusID":"0000:00:03.0"`, field: "device"},
		{name: "hwaddr beats kernelpath", json: `"hwaddr":"0a:00:00:00:00:01","kernelpath":"/sys/devices/pci0000:00/0000:00:07.0"`, field: "hwaddr"},
		{name: "kernelpath", json: `"kernelpath":"/sys/devices/pci0000:00/0000:00:07.0","pciBusID":"0000:00:03.0"`, field: "kernelpath", netName: "ens7"},
		{name: "pciBusID", json: `"pciBusID":"0000:00:03.0"`, field: "pciBusID", netName: "ens3"},
		{name: "virtio pciBusID", json: `"pciBusID":"0000:00:04.0"`, field: "pciBusID", netName: "ens4"},
		{name: "deviceID replaces pciBusID", json: `"pciBusID":"0000:00:04.0","runtimeConfig":{"deviceID":"0000:00:03.0"}`, field: "runtimeConfig.deviceID", netName: "ens3"},
		{name: "auxiliary deviceID", json: `"pciBusID":"0000:00:04.0","runtimeConfig":{"deviceID":"mlx5_core.sf.2"}`, field: "runtimeConfig.deviceID", netName: "enp3s0f0s2"},
		{name: "DPDK driver", json: `"pciBusID":"0000:00:05.0"`, field: "pciBusID", dpdk: true},
		{name: "unknown deviceID", json: `"runtimeConfig":{"deviceID":"0000:00:99.0"}`, errField: "runtimeConfig.deviceID"},
		{name: "PCI device without a driver", json: `"pciBusID":"0000:00:06.0"`, field: "pciBusID", errField: "pciBusID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseConfig([]byte(`{"cniVersion":"1.0.0","name":"n",` + tc.json + `}`))
			if err != nil {
				t.Fatal(err)
			}
			src, err := fs.locate(n)
			if err == nil && src.pci != "" {
				var dpdk bool
				if dpdk, err = fs.userspaceDriver(src.field, src.pci); err == nil && dpdk != tc.dpdk {
					t.Errorf("DPDK mode %v, want %v", dpdk, tc.dpdk)
				}
			}
			if tc.errField != "" {
				if conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), tc.errField) {
					t.Fatalf("err %v, want code 7 naming %s", err, tc.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if src.field != tc.field {
				t.Errorf("found by %q, want %q", src.field, tc.field)
			}
			if tc.netName != "" {
				if got, err := fs.netName(src.dir); err != nil || got != tc.netName {
					t.Errorf("interface %q (%v), want %q", got, err, tc.netName)
				}
			}
		})
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
