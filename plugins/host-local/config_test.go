package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/ipam"
)

func TestParseConfig(t *testing.T) {
	const head = `"cniVersion":"1.1.0","name":"n","type":"bridge"`
	ipamConf := func(body string) string { return `{` + head + `,"ipam":{"type":"host-local",` + body + `}}` }
	ranges := func(sets string) string { return ipamConf(`"ranges":` + sets) }
	one := func(r string) string { return ranges(`[[` + r + `]]`) }
	for _, tc := range []struct {
		name  string
		json  string
		args  string
		code  uint   // 0: valid
		field string // must appear in the error message
		check func(*testing.T, *Config)
	}{
		{name: "defaults", json: one(`{"subnet":"10.0.0.0/24"}`), check: func(t *testing.T, c *Config) {
			r := c.Sets[0][0]
			if r.Start.String() != "10.0.0.1" || r.End.String() != "10.0.0.254" || r.Gateway.String() != "10.0.0.1" {
				t.Errorf("range %+v", r)
			}
			if c.DataDir != ipam.DefaultDataDir || c.Name != "n" {
				t.Errorf("dataDir %q name %q", c.DataDir, c.Name)
			}
		}},
		{name: "v6 defaults", json: one(`{"subnet":"fd00::/64"}`), check: func(t *testing.T, c *Config) {
			r := c.Sets[0][0]
			if r.Start.String() != "fd00::1" || r.End.String() != "fd00::ffff:ffff:ffff:ffff" || r.Gateway.String() != "fd00::1" {
				t.Errorf("range %+v", r)
			}
		}},
		{name: "explicit bounds", json: one(`{"subnet":"10.10.0.0/16","rangeStart":"10.10.1.20","rangeEnd":"10.10.3.50","gateway":"10.10.0.254"}`),
			check: func(t *testing.T, c *Config) {
				if got := c.Sets[0].String(); got != "10.10.0.0/16 (10.10.1.20-10.10.3.50)" {
					t.Errorf("set %s", got)
				}
				if c.Sets[0][0].Gateway.String() != "10.10.0.254" {
					t.Errorf("gateway %s", c.Sets[0][0].Gateway)
				}
			}},
		{name: "/30 allowed", json: one(`{"subnet":"10.0.0.0/30"}`)},
		{name: "/126 allowed", json: one(`{"subnet":"fd00::/126"}`)},
		{name: "set order: ipRanges, legacy, ranges", json: `{` + head + `,"runtimeConfig":{"ipRanges":[[{"subnet":"10.3.0.0/24"}]]},` +
			`"ipam":{"subnet":"10.1.0.0/24","ranges":[[{"subnet":"10.2.0.0/24"}]],"dataDir":"/d"}}`, check: func(t *testing.T, c *Config) {
			var got []string
			for _, s := range c.Sets {
				got = append(got, s.String())
			}
			if strings.Join(got, " ") != "10.3.0.0/24 10.1.0.0/24 10.2.0.0/24" {
				t.Errorf("sets %v", got)
			}
			if strings.Join(c.SetFields, " ") != "runtimeConfig.ipRanges[0] ipam ipam.ranges[0]" || c.DataDir != "/d" {
				t.Errorf("fields %v dataDir %s", c.SetFields, c.DataDir)
			}
		}},
		{name: "stray legacy gateway ignored", json: ipamConf(`"gateway":"10.9.9.9","ranges":[[{"subnet":"10.2.0.0/24"}]]`), check: func(t *testing.T, c *Config) {
			if len(c.Sets) != 1 {
				t.Errorf("sets %v", c.Sets)
			}
		}},
		{name: "subnet unparseable", json: one(`{"subnet":"10.300.0.0/24"}`), code: 7, field: "ipam.ranges[0][0].subnet"},
		{name: "subnet missing", json: one(`{"gateway":"10.0.0.1"}`), code: 7, field: "subnet"},
		{name: "subnet host bits", json: one(`{"subnet":"10.0.0.1/24"}`), code: 7, field: "subnet"},
		{name: "subnet /31", json: one(`{"subnet":"10.0.0.0/31"}`), code: 7, field: "subnet"},
		{name: "subnet /32", json: one(`{"subnet":"10.0.0.7/32"}`), code: 7, field: "subnet"},
		{name: "subnet /127", json: one(`{"subnet":"fd00::/127"}`), code: 7, field: "subnet"},
		{name: "legacy subnet unparseable", json: ipamConf(`"subnet":"nope"`), code: 7, field: "ipam.subnet"},
		{name: "gateway outside subnet", json: one(`{"subnet":"10.0.0.0/24","gateway":"10.1.1.1"}`), code: 7, field: "ipam.ranges[0][0].gateway"},
		{name: "gateway unparseable", json: one(`{"subnet":"10.0.0.0/24","gateway":"x"}`), code: 7, field: "gateway"},
		{name: "gateway other family", json: one(`{"subnet":"10.0.0.0/24","gateway":"fd00::1"}`), code: 7, field: "gateway"},
		{name: "rangeStart outside subnet", json: one(`{"subnet":"10.0.0.0/24","rangeStart":"10.0.1.5"}`), code: 7, field: "rangeStart"},
		{name: "rangeEnd outside subnet", json: one(`{"subnet":"10.0.0.0/24","rangeEnd":"10.0.1.5"}`), code: 7, field: "rangeEnd"},
		{name: "rangeStart after rangeEnd", json: one(`{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.50","rangeEnd":"10.0.0.40"}`), code: 7, field: "rangeStart"},
		{name: "rangeEnd before default start", json: one(`{"subnet":"10.0.0.0/24","rangeEnd":"10.0.0.0"}`), code: 7, field: "rangeEnd"},
		{name: "legacy rangeStart outside", json: ipamConf(`"subnet":"10.0.0.0/24","rangeStart":"10.0.5.1"`), code: 7, field: "ipam.rangeStart"},
		{name: "overlap within a set", json: ranges(`[[{"subnet":"10.0.0.0/24"},{"subnet":"10.0.0.128/25"}]]`), code: 7, field: "overlap"},
		{name: "overlap across sets", json: ranges(`[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.0.128/25"}]]`), code: 7, field: "overlap"},
		{name: "overlap legacy and ranges", json: ipamConf(`"subnet":"10.0.0.0/16","ranges":[[{"subnet":"10.0.9.0/24"}]]`), code: 7, field: "overlap"},
		{name: "overlap runtime ipRanges", json: `{` + head + `,"runtimeConfig":{"ipRanges":[[{"subnet":"10.0.0.0/24"}]]},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, code: 7, field: "overlap"},
		{name: "narrowed ranges do not overlap", json: ranges(`[[{"subnet":"10.0.0.0/24","rangeEnd":"10.0.0.99"}],[{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.100","gateway":"10.0.0.254"}]]`)},
		{name: "mixed families in a set", json: ranges(`[[{"subnet":"10.0.0.0/24"},{"subnet":"fd00::/64"}]]`), code: 7, field: "ipam.ranges[0][1].subnet"},
		{name: "empty set", json: ranges(`[[]]`), code: 7, field: "ipam.ranges[0]"},
		{name: "no ranges", json: ipamConf(`"dataDir":"/x"`), code: 7, field: "ipam.ranges"},
		{name: "no ipam", json: `{` + head + `}`, code: 7, field: "ipam"},
		{name: "network name escapes", json: strings.Replace(one(`{"subnet":"10.0.0.0/24"}`), `"name":"n"`, `"name":"../etc"`, 1), code: 7, field: "network name"},
		{name: "network name with slash", json: strings.Replace(one(`{"subnet":"10.0.0.0/24"}`), `"name":"n"`, `"name":"a/b"`, 1), code: 7, field: "network name"},
		{name: "ranges wrong type", json: ranges(`"10.0.0.0/24"`), code: 7, field: "ranges"},
		{name: "invalid JSON", json: `{` + head, code: 6},
		{name: "two v4 sets in 0.2.0", json: strings.Replace(ranges(`[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.1.0.0/24"}]]`), "1.1.0", "0.2.0", 1), code: 7, field: "cniVersion"},
		{name: "dual stack in 0.2.0", json: strings.Replace(ranges(`[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64"}]]`), "1.1.0", "0.2.0", 1)},

		// Requested addresses.
		{name: "runtime ips", json: `{` + head + `,"runtimeConfig":{"ips":["10.0.0.9/24","fd00::9"]},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64"}]]}}`,
			check: func(t *testing.T, c *Config) {
				if c.Requested[0].Addr.String() != "10.0.0.9" || c.Requested[1].Addr.String() != "fd00::9" || c.Requested[0].Field != "runtimeConfig.ips[0]" {
					t.Errorf("requested %+v", c.Requested)
				}
			}},
		{name: "args.cni.ips", json: `{` + head + `,"args":{"cni":{"ips":["10.0.0.9"]}},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`,
			check: func(t *testing.T, c *Config) {
				if c.Requested[0].Field != "args.cni.ips[0]" {
					t.Errorf("requested %+v", c.Requested)
				}
			}},
		{name: "CNI_ARGS IP", json: ranges(`[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64"}]]`), args: "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.0.0.7,fd00::7",
			check: func(t *testing.T, c *Config) {
				if c.Requested[0].Addr.String() != "10.0.0.7" || c.Requested[1].Addr.String() != "fd00::7" {
					t.Errorf("requested %+v", c.Requested)
				}
			}},
		{name: "CNI_ARGS ip lowercase is not IP", json: one(`{"subnet":"10.0.0.0/24"}`), args: "ip=10.9.9.9", check: func(t *testing.T, c *Config) {
			if c.Requested[0].Addr.IsValid() {
				t.Errorf("requested %+v", c.Requested)
			}
		}},
		{name: "same address from two sources", json: `{` + head + `,"runtimeConfig":{"ips":["10.0.0.9"]},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, args: "IP=10.0.0.9"},
		{name: "requested not in any range", json: `{` + head + `,"runtimeConfig":{"ips":["10.9.0.9"]},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, code: 7, field: "runtimeConfig.ips[0]"},
		{name: "requested outside narrowed range", json: `{` + head + `,"runtimeConfig":{"ips":["10.0.0.200"]},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24","rangeEnd":"10.0.0.100"}]]}}`, code: 7, field: "not in any range"},
		{name: "requested via CNI_ARGS not in range", json: one(`{"subnet":"10.0.0.0/24"}`), args: "IP=192.168.0.1", code: 7, field: "CNI_ARGS IP"},
		{name: "requested gateway", json: `{` + head + `,"runtimeConfig":{"ips":["10.0.0.1"]},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, code: 7, field: "gateway"},
		{name: "two requested in one set", json: `{` + head + `,"runtimeConfig":{"ips":["10.0.0.5","10.0.0.6"]},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, code: 7, field: "runtimeConfig.ips[1]"},
		{name: "requested unparseable", json: `{` + head + `,"runtimeConfig":{"ips":["ten"]},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, code: 7, field: "runtimeConfig.ips[0]"},

		// Routes.
		{name: "routes", json: ipamConf(`"subnet":"10.0.0.0/24","routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.0.0.5","mtu":1400,"priority":5,"table":100}]`),
			check: func(t *testing.T, c *Config) {
				if len(c.Routes) != 2 || c.Routes[1].GW.String() != "10.0.0.5" || c.Routes[1].MTU != 1400 || *c.Routes[1].Table != 100 || c.Routes[0].Dst.String() != "0.0.0.0/0" {
					t.Errorf("routes %v", c.Routes)
				}
			}},
		{name: "route bad dst", json: ipamConf(`"subnet":"10.0.0.0/24","routes":[{"dst":"0.0.0.0"}]`), code: 7, field: "ipam.routes[0].dst"},
		{name: "route missing dst", json: ipamConf(`"subnet":"10.0.0.0/24","routes":[{"gw":"10.0.0.1"}]`), code: 7, field: "ipam.routes[0].dst"},
		{name: "route bad gw", json: ipamConf(`"subnet":"10.0.0.0/24","routes":[{"dst":"0.0.0.0/0","gw":"x"}]`), code: 7, field: "ipam.routes[0].gw"},
		{name: "route gw other family", json: ipamConf(`"subnet":"10.0.0.0/24","routes":[{"dst":"::/0","gw":"10.0.0.1"}]`), code: 7, field: "ipam.routes[0].gw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tc.json), tc.args)
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
			if err == nil && tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestParseLocation(t *testing.T) {
	// DEL and GC only need name and dataDir: a range made invalid since the ADD does not matter.
	name, dir, err := parseLocation([]byte(`{"name":"n","ipam":{"dataDir":"/d","ranges":[[{"subnet":"bogus"}]]}}`))
	if err != nil || name != "n" || dir != "/d" {
		t.Errorf("parseLocation = %q %q %v", name, dir, err)
	}
	if _, dir, _ := parseLocation([]byte(`{"name":"n","ipam":{}}`)); dir != ipam.DefaultDataDir {
		t.Errorf("default dataDir %q", dir)
	}
	if _, _, err := parseLocation([]byte(`{"name":"..","ipam":{}}`)); conf.Code(err) != conf.CodeInvalidConfig {
		t.Errorf("name .. accepted: %v", err)
	}
}

// Every key of the configuration structs is documented in README.md.
func TestReadmeListsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, v := range []any{NetConf{}, IPAMConf{}, RangeConf{}, RouteConf{}} {
		jsonKeys(reflect.TypeOf(v), keys)
	}
	if len(keys) < 20 {
		t.Fatalf("found only %d keys: %v", len(keys), keys)
	}
	for k := range keys {
		// As a key of its own (`dataDir`) or as part of a path (`runtimeConfig.ips`, `args.cni.ips`).
		if !regexp.MustCompile("[`.]" + regexp.QuoteMeta(k) + "[`.]").Match(readme) {
			t.Errorf("README.md does not document %q", k)
		}
	}
}

func jsonKeys(t reflect.Type, into map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			into[name] = true
		}
		jsonKeys(f.Type, into)
	}
}
