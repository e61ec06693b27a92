package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/cniconf"
)

// fakePlugin is a shell script that answers VERSION with versions and STATUS with a code 7 error when
// its config contains "bad", else success.
func fakePlugin(t *testing.T, dir, name, versions string) {
	t.Helper()
	script := `#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":[` + versions + `]}' ;;
STATUS) if grep -q bad; then echo '{"cniVersion":"1.1.0","code":7,"msg":"vlan: 5000 is out of range"}'; exit 1; fi ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestBinariesAndConflistsWithFakePlugins(t *testing.T) {
	bin, conf := t.TempDir(), t.TempDir()
	all := `"0.4.0","1.0.0","1.1.0"`
	fakePlugin(t, bin, "bridge", all)
	fakePlugin(t, bin, "host-local", all)
	fakePlugin(t, bin, "old", `"0.4.0","1.0.0"`)
	writeFile(t, conf, "10-good.conflist", `{"cniVersion":"1.0.0","name":"good","plugins":[{"type":"bridge","ipam":{"type":"host-local"}},{"type":"old"}]}`)
	writeFile(t, conf, "20-bad.conflist", `{"cniVersion":"1.1.0","name":"bad","plugins":[{"type":"bridge","vlan":"bad"}]}`)
	writeFile(t, conf, "30-noipam.conflist", `{"cniVersion":"1.1.0","name":"noipam","plugins":[{"type":"bridge","ipam":{"type":"gone"}}]}`)
	writeFile(t, conf, "40-dup.conflist", `{"cniVersion":"1.1.0","name":"good","plugins":[{"type":"bridge"}]}`)
	nets, err := cniconf.LoadDir(conf)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Networks: nets, BinDirs: []string{bin}}
	got := map[string]string{}
	for _, f := range append(checkBinaries(n), checkConflists(n)...) {
		got[f.Subject] = f.Status.String() + ": " + f.Found + " | " + f.Fix
	}
	for subject, want := range map[string]string{
		"good (10-good.conflist): plugin bridge":         "ok: ",
		"good (10-good.conflist): plugin old":            "ok: ", // supports the list's 1.0.0
		"good (10-good.conflist): plugins[1] old":        "ok: not validated",
		"bad (20-bad.conflist): plugins[0] bridge":       "FAIL: rejects its config (code 7): vlan: 5000 is out of range",
		"noipam (30-noipam.conflist): ipam gone":         "FAIL: no gone in",
		"noipam (30-noipam.conflist): plugins[0] bridge": "ok: not validated: its ipam plugin gone is unusable",
		"good (40-dup.conflist)":                         "warn: network \"good\" is also defined in",
	} {
		if !strings.HasPrefix(got[subject], want) {
			t.Errorf("%s: got %q, want %q...", subject, got[subject], want)
		}
	}
}
