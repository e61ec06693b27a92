package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
	"github.com/netloom/netloom/pkg/conf"
)

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex)
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"host-device"`
	for _, s := range []string{
		`{` + base + `,"device":"eth1","ipam":{"type":"static","addresses":[{"address":"10.0.0.2/24"}]}}`,
		`{` + base + `,"hwaddr":"0a:58:0a:f4:00:05","kernelpath":"/sys/devices/pci0000:00/0000:00:03.0"}`,
		`{` + base + `,"pciBusID":"0000:00:03.0","DPDKMode":true,"runtimeConfig":{"deviceID":"mlx5_core.sf.2"}}`,
		`{` + base + `,"kernelpath":"/sys/devices/../../etc"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		n, err := parseConfig(stdin)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if n.Device == "" && n.HWAddr == "" && n.KernelPath == "" && n.PCIBusID == "" && n.RuntimeConfig.DeviceID == "" {
			t.Fatal("accepted a config naming no device")
		}
		if n.Device != "" {
			if err := conf.ValidateIfName("device", n.Device); err != nil {
				t.Fatalf("accepted device %q", n.Device)
			}
		}
		if n.HWAddr != "" {
			if _, err := net.ParseMAC(n.HWAddr); err != nil {
				t.Fatalf("accepted hwaddr %q", n.HWAddr)
			}
		}
		if n.KernelPath != "" && !strings.HasPrefix(filepath.Clean(n.KernelPath), "/sys/devices/") {
			t.Fatalf("accepted kernelpath %q", n.KernelPath)
		}
		for _, id := range []string{n.PCIBusID, n.RuntimeConfig.DeviceID} {
			if strings.Contains(id, "/") || id == ".." {
				t.Fatalf("accepted device address %q", id)
			}
		}
	})
}
