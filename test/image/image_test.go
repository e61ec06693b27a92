package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	bin := t.TempDir()
	for _, n := range []string{"netloomd", "bridge", "portmap"} {
		if err := os.WriteFile(filepath.Join(bin, n), []byte("binary "+n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(bin, "netloom-image.tar") // in bin/, as make image writes it: left out of the layer
	if err := write(out, bin, "netloom/netloom:0.1.0"); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, mustRead(t, out))
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json %s: %v", files["manifest.json"], err)
	}
	m := manifest[0]
	if len(m.RepoTags) != 1 || m.RepoTags[0] != "netloom/netloom:0.1.0" || len(m.Layers) != 1 {
		t.Fatalf("manifest %+v", m)
	}
	var cfg struct {
		Config struct{ Entrypoint []string }
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files[m.Config], &cfg); err != nil {
		t.Fatal(err)
	}
	layer := files[m.Layers[0]]
	sum := sha256.Sum256(layer)
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("diff_ids %v, want the layer's sha256", cfg.RootFS.DiffIDs)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/netloom/bin/netloomd" {
		t.Errorf("entrypoint %v", cfg.Config.Entrypoint)
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	got := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			got[h.Name] = h.Mode
		}
	}
	want := map[string]int64{"netloom/bin/bridge": 0o755, "netloom/bin/netloomd": 0o755, "netloom/bin/portmap": 0o755}
	if len(got) != len(want) {
		t.Errorf("layer holds %v, want %v", got, want)
	}
	for n, mode := range want {
		if got[n] != mode {
			t.Errorf("layer %s mode %o, want %o", n, got[n], mode)
		}
	}
	// The same binaries give the same image.
	again := filepath.Join(t.TempDir(), "again.tar")
	if err := write(again, bin, "netloom/netloom:0.1.0"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, out), mustRead(t, again)) {
		t.Error("two builds of the same binaries differ")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readTar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out[h.Name] = data
	}
}
