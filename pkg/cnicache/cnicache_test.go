package cnicache

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	if got, err := Read(dir); err != nil || got != nil {
		t.Fatalf("missing cache: %v, %v", got, err)
	}
	res := filepath.Join(dir, "results")
	if err := os.MkdirAll(res, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"net-b-eth0": `{"kind":"cniCacheV1","containerId":"b","ifName":"eth0","networkName":"net","netns":"/run/netns/b",
			"config":"eyJuYW1lIjoibmV0In0=","capabilityArgs":{"portMappings":[{"hostPort":80}]},
			"result":{"interfaces":[{"name":"br0"},{"name":"veth1"},{"name":"eth0","sandbox":"/run/netns/b"}]}}`,
		"net-a-eth0": `{"kind":"cniCacheV1","containerId":"a","ifName":"eth0","networkName":"net"}`,
		"other":      `{"kind":"somethingElse","containerId":"c"}`,
		"broken":     `{`,
		"noid":       `{"kind":"cniCacheV1"}`,
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(res, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ContainerID != "a" || got[1].ContainerID != "b" {
		t.Fatalf("entries: %+v", got)
	}
	b := got[1]
	if b.NetNS != "/run/netns/b" || len(b.CapabilityArgs.PortMappings) != 1 || string(b.Config) != `{"name":"net"}` {
		t.Errorf("entry b: %+v", b)
	}
	if hi := b.HostInterfaces(); !reflect.DeepEqual(hi, []string{"br0", "veth1"}) {
		t.Errorf("host interfaces: %v", hi)
	}
}
