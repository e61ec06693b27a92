// Command image writes netloom's container image as a docker-archive tarball (the format `docker save`
// writes and `docker load`, `ctr images import` and `kind load image-archive` read) without a container
// daemon: one layer holding every binary of -bin under /netloom/bin (mode 0755, owner root, timestamps
// zero, so the same binaries give the same image), an image config whose entrypoint is netloomd, and
// manifest.json tagging it -name. `make image` runs it with the name deploy/netloom.yaml uses.
//
//	go run ./test/image -bin bin -name netloom/netloom:0.1.0 -o bin/netloom-image.tar
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"
)

func main() {
	bin := flag.String("bin", "bin", "`directory` of the binaries to put under /netloom/bin")
	name := flag.String("name", "", "image `reference` (repository:tag)")
	out := flag.String("o", "bin/netloom-image.tar", "output `file`")
	flag.Parse()
	if *name == "" {
		fmt.Fprintln(os.Stderr, "image: -name is required")
		os.Exit(2)
	}
	if err := write(*out, *bin, *name); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

// write builds the image from the binaries in bin into out.
func write(out, bin, name string) error {
	layer, err := layerTar(bin)
	if err != nil {
		return err
	}
	layerID := sha(layer)
	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      time.Unix(0, 0).UTC(),
		"config": map[string]any{
			"Entrypoint": []string{"/netloom/bin/netloomd"},
			"Env":        []string{"PATH=/netloom/bin"},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerID}},
		"history": []map[string]any{{"created": time.Unix(0, 0).UTC(), "created_by": "netloom test/image"}},
	})
	if err != nil {
		return err
	}
	cfgName := sha(cfg) + ".json"
	layerName := layerID + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{name}, "Layers": []string{layerName}}})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		data []byte
	}{{cfgName, cfg}, {layerName, layer}, {"manifest.json", manifest}}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: layerID + "/", Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// layerTar is the image's one layer: netloom/ and netloom/bin/, then each binary (tarballs, such as an
// earlier image in the same folder, and temporary files left out).
func layerTar(bin string) ([]byte, error) {
	entries, err := os.ReadDir(bin)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); e.Type().IsRegular() && ext != ".tar" && ext != ".tmp" {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no binaries in %s (run make build)", bin)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"netloom/", "netloom/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(bin, n))
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "netloom/bin/" + n, Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
