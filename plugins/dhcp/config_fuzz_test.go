package main

import (
	"os"
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"
	"github.com/netloom/netloom/pkg/dhcp"
)

func readREADME() (string, error) {
	b, err := os.ReadFile("README.md")
	return string(b), err
}

func FuzzParseConfig(f *testing.F) {
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex, "")
	}
	const base = `"cniVersion":"1.0.0","name":"n","type":"macvlan"`
	for _, s := range []string{
		`{` + base + `,"ipam":{"type":"dhcp"}}`,
		`{` + base + `,"ipam":{"type":"dhcp","daemonSocketPath":"/run/x.sock","priority":3,"provide":[{"option":"host-name","fromArg":"K8S_POD_NAME"}],"request":[{"skipDefault":true},{"option":"121"}]}}`,
		`{` + base + `,"ipam":{"type":"dhcp","provide":[{"option":"999","value":"x"}]}}`,
		`{` + base + `}`,
		`{` + base,
	} {
		f.Add([]byte(s), "K8S_POD_NAME=web-0;IgnoreUnknown=1")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		n, err := dhcp.ParseConfig(stdin)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if n.IPAM == nil || n.IPAM.SocketPath() == "" || n.IPAM.Priority < 0 {
			t.Fatalf("accepted %+v", n.IPAM)
		}
		// A valid configuration gives the daemon its options or a CNI error about CNI_ARGS, never a panic.
		if _, err := dhcp.Options(n.IPAM, cniArgs); err != nil {
			fuzzseed.RequireCNIError(t, err)
		}
	})
}
