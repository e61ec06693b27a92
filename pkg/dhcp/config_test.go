package dhcp

import (
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"macvlan"`
	for _, tc := range []struct {
		name   string
		json   string
		code   uint   // 0: valid
		field  string // must appear in the error message
		socket string // the socket the config names, when valid
	}{
		{name: "defaults", json: `{` + base + `,"ipam":{"type":"dhcp"}}`, socket: DefaultSocketPath},
		{name: "every key", json: `{` + base + `,"ipam":{"type":"dhcp","daemonSocketPath":"/run/x.sock","priority":5,` +
			`"provide":[{"option":"host-name","value":"pod"},{"option":"12","fromArg":"K8S_POD_NAME"}],` +
			`"request":[{"skipDefault":true},{"option":"6"}]}}`, socket: "/run/x.sock"},
		{name: "provide with neither value nor fromArg", json: `{` + base + `,"ipam":{"type":"dhcp","provide":[{"option":"host-name"}]}}`, socket: DefaultSocketPath},
		{name: "no ipam", json: `{` + base + `}`, code: conf.CodeInvalidConfig, field: "ipam"},
		{name: "unknown option name", json: `{` + base + `,"ipam":{"type":"dhcp","provide":[{"option":"colour","value":"x"}]}}`, code: conf.CodeInvalidConfig, field: "ipam.provide[0].option"},
		{name: "option number too large", json: `{` + base + `,"ipam":{"type":"dhcp","request":[{"option":"300"}]}}`, code: conf.CodeInvalidConfig, field: "ipam.request[0].option"},
		{name: "pad option", json: `{` + base + `,"ipam":{"type":"dhcp","request":[{"option":"0"}]}}`, code: conf.CodeInvalidConfig, field: "ipam.request[0].option"},
		{name: "end option", json: `{` + base + `,"ipam":{"type":"dhcp","provide":[{"option":"255","value":"x"}]}}`, code: conf.CodeInvalidConfig, field: "ipam.provide[0].option"},
		{name: "value too long", json: `{` + base + `,"ipam":{"type":"dhcp","provide":[{"option":"host-name","value":"` + strings.Repeat("a", 256) + `"}]}}`, code: conf.CodeInvalidConfig, field: "ipam.provide[0].value"},
		{name: "negative priority", json: `{` + base + `,"ipam":{"type":"dhcp","priority":-1}}`, code: conf.CodeInvalidConfig, field: "ipam.priority"},
		{name: "priority wrong type", json: `{` + base + `,"ipam":{"type":"dhcp","priority":"1"}}`, code: conf.CodeInvalidConfig, field: "priority"},
		{name: "request not a list", json: `{` + base + `,"ipam":{"type":"dhcp","request":{"option":"6"}}}`, code: conf.CodeInvalidConfig, field: "request"},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseConfig([]byte(tc.json))
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("error %q does not name %q", err, tc.field)
				}
				return
			}
			if got := n.IPAM.SocketPath(); got != tc.socket {
				t.Errorf("socket %q, want %q", got, tc.socket)
			}
		})
	}
}
