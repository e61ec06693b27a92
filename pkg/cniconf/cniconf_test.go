package cniconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"10-list.conflist":   `{"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}`,
		"20-one.conf":        `{"cniVersion": "0.4.0", "name": "b", "type": "macvlan", "master": "eth0"}`,
		"30-list.json":       `{"cniVersion": "1.1.0", "name": "c", "plugins": [{"type": "ptp"}]}`,
		"40-notype.conf":     `{"cniVersion": "1.1.0", "name": "d"}`,
		"50-broken.conf":     `{"cniVersion": `,
		"60-nolist.conflist": `{"cniVersion": "1.1.0", "name": "e", "type": "bridge"}`,
		"README.md":          `not a config`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nets, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		file    string
		name    string
		plugins string
		err     string
	}{
		{"10-list.conflist", "a", "bridge,portmap", ""},
		{"20-one.conf", "b", "macvlan", ""},
		{"30-list.json", "c", "ptp", ""},
		{"40-notype.conf", "", "", `no "type"`},
		{"50-broken.conf", "", "", "unexpected end"},
		// libcni 1.3 takes a conflist without "plugins" (it may load them from a directory named after
		// the network): as a runtime does, it loads, with no plugin of its own.
		{"60-nolist.conflist", "e", "", ""},
	}
	if len(nets) != len(want) {
		t.Fatalf("LoadDir read %d files, want %d: %+v", len(nets), len(want), nets)
	}
	for i, w := range want {
		n := nets[i]
		if filepath.Base(n.File) != w.file {
			t.Errorf("file %d = %s, want %s (name order)", i, n.File, w.file)
			continue
		}
		if w.err != "" {
			if n.Err == nil || !strings.Contains(n.Err.Error(), w.err) {
				t.Errorf("%s: error %v, want one containing %q", w.file, n.Err, w.err)
			}
			continue
		}
		if n.Err != nil {
			t.Errorf("%s: %v", w.file, n.Err)
			continue
		}
		var types []string
		for _, p := range n.List.Plugins {
			types = append(types, p.Network.Type)
		}
		if n.List.Name != w.name || strings.Join(types, ",") != w.plugins {
			t.Errorf("%s: list %q with %v, want %q with %s", w.file, n.List.Name, types, w.name, w.plugins)
		}
	}
	if n := nets[1]; n.Err == nil && n.List.CNIVersion != "0.4.0" {
		t.Errorf("a wrapped .conf keeps its cniVersion: got %q", n.List.CNIVersion)
	}
}
