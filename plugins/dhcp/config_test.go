package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/dhcp"
)

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", dhcp.NetConf{})
}

// The README documents every daemon flag too.
func TestREADMEDocumentsEveryDaemonFlag(t *testing.T) {
	readme, err := readREADME()
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	_, _ = parseDaemonFlags([]string{"-h"}, &help)
	for _, line := range strings.Split(help.String(), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "-") && !strings.Contains(readme, "`"+f[0]) {
			t.Errorf("README.md does not document the daemon flag `%s`", f[0])
		}
	}
}

func TestParseDaemonFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
		want dhcp.DaemonConfig
	}{
		{name: "defaults", want: dhcp.DaemonConfig{SocketPath: dhcp.DefaultSocketPath,
			Client: dhcp.ClientConfig{Timeout: 10 * time.Second, ResendMax: 62 * time.Second, ResendTimeout: 208 * time.Second}}},
		{name: "every flag", args: []string{"-pidfile", "/run/dhcp.pid", "-hostprefix", "/host", "-socketpath", "/run/x.sock", "-broadcast",
			"-timeout", "3s", "-resendmax", "20s", "-resendtimeout", "1m"},
			want: dhcp.DaemonConfig{PIDFile: "/run/dhcp.pid", HostPrefix: "/host", SocketPath: "/run/x.sock", Broadcast: true,
				Client: dhcp.ClientConfig{Timeout: 3 * time.Second, ResendMax: 20 * time.Second, ResendTimeout: time.Minute}}},
		{name: "the last -socketpath wins", args: []string{"-socketpath", "/a", "-socketpath", "/b"},
			want: dhcp.DaemonConfig{SocketPath: "/b", Client: dhcp.ClientConfig{Timeout: 10 * time.Second, ResendMax: 62 * time.Second, ResendTimeout: 208 * time.Second}}},
		{name: "unknown flag", args: []string{"-port", "67"}, err: "port"},
		{name: "bad duration", args: []string{"-timeout", "soon"}, err: "timeout"},
		{name: "zero duration", args: []string{"-resendtimeout", "0s"}, err: "-resendtimeout must be positive"},
		{name: "stray argument", args: []string{"now"}, err: "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := parseDaemonFlags(tc.args, &out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error()+out.String(), tc.err) {
					t.Fatalf("err %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
