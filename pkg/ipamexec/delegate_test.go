package ipamexec

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// fakePlugin writes an executable shell script called name into dir.
func fakePlugin(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestDelegate: the delegate is found in CNI_PATH and run with CNI_COMMAND set and the caller's
// stdin; its result is read in its own version; its CNI error keeps its code; a failure without one,
// or a plugin that is not there, says so.
func TestDelegate(t *testing.T) {
	empty, dir := t.TempDir(), t.TempDir()
	t.Setenv("CNI_PATH", empty+string(os.PathListSeparator)+dir)
	t.Setenv("CNI_COMMAND", "ADD")
	fakePlugin(t, dir, "good", `case "$CNI_COMMAND" in
ADD) read -r line; echo '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.2.3/24","gateway":"10.1.2.1"}]}';;
DEL) test "$(cat)" = '{"x":1}' || exit 1;;
STATUS) echo '{"cniVersion":"1.1.0","code":50,"msg":"range full"}'; exit 1;;
*) exit 1;;
esac`)
	fakePlugin(t, dir, "bad", `echo 'not json'; exit 3`)
	fakePlugin(t, dir, "silent", `exit 2`)
	ctx := context.Background()

	res, err := Add(ctx, "good", []byte(`{"x":1}`+"\n"))
	if err != nil || len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.1.2.3/24" || res.IPs[0].Gateway.String() != "10.1.2.1" {
		t.Fatalf("ADD: %+v %v", res, err)
	}
	if err := Del(ctx, "good", []byte(`{"x":1}`)); err != nil {
		t.Errorf("DEL with the caller's stdin: %v", err)
	}
	err = Status(ctx, "good", nil)
	var te *types.Error
	if e, ok := err.(*types.Error); ok {
		te = e
	}
	if te == nil || te.Code != 50 || !strings.Contains(te.Msg, `ipam "good" STATUS: range full`) {
		t.Errorf("STATUS error %v, want code 50 naming the plugin", err)
	}
	if err := Check(ctx, "bad", nil); err == nil || !strings.Contains(err.Error(), "not json") {
		t.Errorf("a failure without a CNI error: %v", err)
	}
	if err := GC(ctx, "silent", nil); err == nil || !strings.Contains(err.Error(), "no error message") {
		t.Errorf("a failure that prints nothing: %v", err)
	}
	if _, err := Add(ctx, "missing", nil); err == nil || !strings.Contains(err.Error(), `failed to find plugin "missing"`) {
		t.Errorf("a missing plugin: %v", err)
	}
	if _, err := Add(ctx, "../good", nil); err == nil {
		t.Error("a path as a plugin name was run")
	}
}

func TestNodeLocal(t *testing.T) {
	for plugin, want := range map[string]bool{"host-local": true, "static": true, "dhcp": false, "whereabouts": false, "": false} {
		if got := NodeLocal(plugin); got != want {
			t.Errorf("NodeLocal(%q) = %v, want %v", plugin, got, want)
		}
	}
}
