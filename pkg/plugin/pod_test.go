package plugin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netloom/netloom/pkg/conf"
)

// A CNI_NETNS that cannot be opened is the runtime's mistake (code 4), and add never runs.
func TestAddInPodBadNetns(t *testing.T) {
	for _, path := range []string{"", "/nonexistent/netloom-netns"} {
		ran := false
		err := AddInPod(path, "1.0.0", func(ns.NetNS) (*current.Result, error) { ran = true; return nil, nil })
		if conf.Code(err) != conf.CodeInvalidEnvironment || ran {
			t.Errorf("AddInPod(%q): err %v (code %d), add ran: %v; want code %d, not run", path, err, conf.Code(err), ran, conf.CodeInvalidEnvironment)
		}
	}
}

// StartLease's lease comes back with its addresses on the interface asked for; a step that fails while
// the IPAM ADD still runs rolls back only after it: the release must not come before the lease.
func TestStartLease(t *testing.T) {
	captureLog(t)
	dir := t.TempDir()
	journal := filepath.Join(dir, "journal")
	script := `case "$CNI_COMMAND" in
ADD) sleep 0.3; echo add >> ` + journal + `; echo '{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.3/24"}]}';;
DEL) echo del >> ` + journal + `;;
esac`
	if err := os.WriteFile(filepath.Join(dir, "slow"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CNI_PATH", dir)
	ctx := context.Background()

	var ok Add
	l3, err := ok.StartLease(ctx, "slow", []byte(`{}`), 1)()
	if err != nil || len(l3.IPs) != 1 || l3.IPs[0].Interface == nil || *l3.IPs[0].Interface != 1 {
		t.Fatalf("lease %+v, %v; want 10.1.2.3/24 on interface 1", l3, err)
	}

	if err := os.Remove(journal); err != nil {
		t.Fatal(err)
	}
	var failed Add
	boom := errors.New("boom")
	err = failed.Run(
		Do("lease", func() error { failed.StartLease(ctx, "slow", []byte(`{}`), 1); return nil }),
		Do("fail", func() error { return boom }),
	)
	got, _ := os.ReadFile(journal)
	if !errors.Is(err, boom) || string(got) != "add\ndel\n" {
		t.Errorf("Run: %v; the IPAM plugin saw %q, want the ADD and then the release", err, got)
	}
}
