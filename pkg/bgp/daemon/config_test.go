package daemon

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/bgp"
)

// daemonConfig is a configuration with a valid bgp section (asn 64512, router ID 10.0.0.1) into which
// bgpExtra is spliced, followed by top-level keys in extra.
func daemonConfig(bgpExtra, extra string) string {
	return `{"bgp":{"asn":64512,"routerID":"10.0.0.1"` + bgpExtra + `}` + extra + `}`
}

// neighbor is a neighbours list of one peer (10.0.0.2, AS 64513) with extra keys.
func neighbor(extra string) string {
	return `,"neighbors":[{"address":"10.0.0.2","asn":64513` + extra + `}]`
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(daemonConfig(neighbor(""), "")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"bgp.listenPort", c.BGP.ListenPort, int32(179)},
		{"bgp.neighbors[0].holdTime", c.BGP.Neighbors[0].HoldTime, uint64(90)},
		{"api.socket", c.API.Socket, "/run/netloom/netloomd.sock"},
		{"api.socket is bgp.DefaultSocket", c.API.Socket, bgp.DefaultSocket},
		{"stateDir", c.StateDir, bgp.DefaultStateDir},
		{"installRoutes", c.installRoutes(), true},
		{"metrics.listen", c.Metrics.Listen, ""},
		{"originate", len(c.originate), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, tc.got, tc.want)
		}
	}
}

func TestParseConfigAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		check      func(c *Config) error
	}{
		{name: "minimal, no neighbours", json: daemonConfig("", "")},
		{name: "listenPort -1: no listening", json: daemonConfig(`,"listenPort":-1`, ""),
			check: func(c *Config) error { return want(c.BGP.ListenPort, int32(-1)) }},
		{name: "listenPort 65535", json: daemonConfig(`,"listenPort":65535`, ""),
			check: func(c *Config) error { return want(c.BGP.ListenPort, int32(65535)) }},
		{name: "holdTime 0 means 90", json: daemonConfig(neighbor(`,"holdTime":0`), ""),
			check: func(c *Config) error { return want(c.BGP.Neighbors[0].HoldTime, uint64(90)) }},
		{name: "holdTime 3", json: daemonConfig(neighbor(`,"holdTime":3`), ""),
			check: func(c *Config) error { return want(c.BGP.Neighbors[0].HoldTime, uint64(3)) }},
		{name: "holdTime 65535", json: daemonConfig(neighbor(`,"holdTime":65535`), "")},
		{name: "ebgpMultihop 255", json: daemonConfig(neighbor(`,"ebgpMultihop":255`), "")},
		{name: "routeReflectorClient, iBGP", json: daemonConfig(`,"neighbors":[{"address":"10.0.0.2","asn":64512,"routeReflectorClient":true}]`, "")},
		{name: "password of 80 bytes", json: daemonConfig(neighbor(`,"password":"`+strings.Repeat("p", 80)+`"`), "")},
		{name: "graceful restart, own AS, one family", json: daemonConfig(neighbor(`,"gracefulRestart":120,"allowOwnAS":1,"addressFamilies":["ipv4"]`), "")},
		{name: "IPv6 neighbour and listen address", json: daemonConfig(`,"listenAddresses":["::","0.0.0.0"],"neighbors":[{"address":"fd77:1::12","asn":64513}]`, "")},
		{name: "two neighbours", json: daemonConfig(`,"neighbors":[{"address":"10.0.0.2","asn":64513},{"address":"10.0.0.3","asn":64514,"passive":true}]`, "")},
		{name: "originate", json: daemonConfig(`,"originate":["10.244.1.0/24","fd00:1::/64"]`, ""),
			check: func(c *Config) error {
				return want(fmt.Sprint(c.originate), fmt.Sprint([]netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:1::/64")}))
			}},
		{name: "everything else", json: daemonConfig("", `,"api":{"socket":"/tmp/x.sock"},"metrics":{"listen":"127.0.0.1:9653"},"stateDir":"/tmp/s","installRoutes":false,"logLevel":"debug"`),
			check: func(c *Config) error {
				return wantAll(want(c.API.Socket, "/tmp/x.sock"), want(c.StateDir, "/tmp/s"), want(c.installRoutes(), false), want(c.LogLevel, "debug"))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				if err := tc.check(c); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func want[T comparable](got, want T) error {
	if got != want {
		return fmt.Errorf("got %v, want %v", got, want)
	}
	return nil
}

func wantAll(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestParseConfigRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		key        string // the error must name it
	}{
		{name: "missing asn", json: `{"bgp":{"routerID":"10.0.0.1"}}`, key: "bgp.asn"},
		{name: "missing routerID", json: `{"bgp":{"asn":64512}}`, key: "bgp.routerID"},
		{name: "IPv6 routerID", json: `{"bgp":{"asn":64512,"routerID":"fd00::1"}}`, key: "bgp.routerID"},
		{name: "garbage routerID", json: `{"bgp":{"asn":64512,"routerID":"node1"}}`, key: "bgp.routerID"},
		{name: "bad listenAddresses[1]", json: daemonConfig(`,"listenAddresses":["0.0.0.0","eth0"]`, ""), key: "bgp.listenAddresses[1]"},
		{name: "listenPort -2", json: daemonConfig(`,"listenPort":-2`, ""), key: "bgp.listenPort"},
		{name: "listenPort 70000", json: daemonConfig(`,"listenPort":70000`, ""), key: "bgp.listenPort"},
		{name: "bad neighbour address", json: daemonConfig(`,"neighbors":[{"address":"peer","asn":1}]`, ""), key: "bgp.neighbors[0].address"},
		{name: "neighbour address with zone", json: daemonConfig(`,"neighbors":[{"address":"fe80::1%eth0","asn":1}]`, ""), key: "bgp.neighbors[0].address"},
		{name: "duplicate neighbour", json: daemonConfig(`,"neighbors":[{"address":"10.0.0.2","asn":1},{"address":"10.0.0.2","asn":2}]`, ""), key: "bgp.neighbors[1].address"},
		{name: "neighbour asn missing", json: daemonConfig(`,"neighbors":[{"address":"10.0.0.2","asn":1},{"address":"10.0.0.3"}]`, ""), key: "bgp.neighbors[1].asn"},
		{name: "holdTime 1", json: daemonConfig(neighbor(`,"holdTime":1`), ""), key: "bgp.neighbors[0].holdTime"},
		{name: "holdTime 2", json: daemonConfig(neighbor(`,"holdTime":2`), ""), key: "bgp.neighbors[0].holdTime"},
		{name: "holdTime 65536", json: daemonConfig(neighbor(`,"holdTime":65536`), ""), key: "bgp.neighbors[0].holdTime"},
		{name: "ebgpMultihop 256", json: daemonConfig(neighbor(`,"ebgpMultihop":256`), ""), key: "bgp.neighbors[0].ebgpMultihop"},
		{name: "routeReflectorClient with eBGP", json: daemonConfig(neighbor(`,"routeReflectorClient":true`), ""), key: "bgp.neighbors[0].routeReflectorClient"},
		{name: "password of 81 bytes", json: daemonConfig(neighbor(`,"password":"`+strings.Repeat("p", 81)+`"`), ""), key: "bgp.neighbors[0].password"},
		{name: "graceful restart too long", json: daemonConfig(neighbor(`,"gracefulRestart":4096`), ""), key: "bgp.neighbors[0].gracefulRestart"},
		{name: "own AS too often", json: daemonConfig(neighbor(`,"allowOwnAS":11`), ""), key: "bgp.neighbors[0].allowOwnAS"},
		{name: "unknown family", json: daemonConfig(neighbor(`,"addressFamilies":["l2vpn"]`), ""), key: "bgp.neighbors[0].addressFamilies[0]"},
		{name: "originate not a CIDR", json: daemonConfig(`,"originate":["10.244.1.0/24","10.244.2.0"]`, ""), key: "bgp.originate[1]"},
		{name: "originate with host bits", json: daemonConfig(`,"originate":["10.244.1.1/24"]`, ""), key: "bgp.originate[0]"},
		{name: "relative api.socket", json: daemonConfig("", `,"api":{"socket":"run/netloomd.sock"}`), key: "api.socket"},
		{name: "bad logLevel", json: daemonConfig("", `,"logLevel":"verbose"`), key: "logLevel"},
		{name: "unknown key in bgp", json: `{"bgp":{"asnn":1,"routerID":"10.0.0.1"}}`, key: "asnn"},
		{name: "data after the object", json: `{"bgp":{"asn":1,"routerID":"10.0.0.1"}} {"x":1}`, key: "more data after the JSON object"},
		{name: "unknown top-level key", json: daemonConfig("", `,"metric":{}`), key: "metric"},
		{name: "unknown neighbour key", json: daemonConfig(neighbor(`,"hold":3`), ""), key: "hold"},
		{name: "asn is a string", json: `{"bgp":{"asn":"64512","routerID":"10.0.0.1"}}`, key: "bgp.asn"},
		{name: "listenPort is a string", json: daemonConfig(`,"listenPort":"179"`, ""), key: "bgp.listenPort"},
		{name: "installRoutes is a string", json: daemonConfig("", `,"installRoutes":"yes"`), key: "installRoutes"},
		{name: "neighbour holdTime negative", json: daemonConfig(neighbor(`,"holdTime":-3`), ""), key: "holdTime"},
		{name: "not JSON", json: `{"bgp":`, key: "config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name %q", err, tc.key)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(daemonConfig("", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(good); err != nil {
		t.Errorf("LoadConfig(good): %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("LoadConfig(missing) = %v, want an error naming the file", err)
	}
}

// TestREADMEDocumentsConfig keeps plugins/bgp-route/README.md, which documents netloomd's file too,
// in step with Config. The README names nested keys by their path (`bgp.neighbors[].asn`), which
// doccheck.RequireKeysInREADME (bare `asn`) does not recognise, so every leaf's path is checked here;
// doccheck.JSONKeys still vouches that no key is missed.
func TestREADMEDocumentsConfig(t *testing.T) {
	readme, err := os.ReadFile("../../../plugins/bgp-route/README.md")
	if err != nil {
		t.Fatal(err)
	}
	paths := jsonPaths(reflect.TypeOf(Config{}), "")
	onPaths := map[string]bool{}
	for _, p := range paths {
		for _, k := range strings.Split(p, ".") {
			onPaths[strings.TrimSuffix(k, "[]")] = true
		}
	}
	for _, k := range doccheck.JSONKeys(Config{}) {
		if !onPaths[k] {
			t.Errorf("key %q is on no path of %v", k, paths)
		}
	}
	for _, p := range paths {
		if !strings.Contains(string(readme), "`"+p+"`") {
			t.Errorf("README does not document netloomd's config key `%s`", p)
		}
	}
}

// jsonPaths lists the dotted JSON paths of t's leaf fields, "[]" marking a list of structs:
// "bgp.asn", "bgp.neighbors[].holdTime", "logLevel".
func jsonPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		ft, path := f.Type, prefix+name
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft, path = ft.Elem(), path+"[]"
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, jsonPaths(ft, path+".")...)
			continue
		}
		out = append(out, path)
	}
	return out
}
