package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/link"
)

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"tuning"`
	for _, tc := range []struct {
		name    string
		json    string
		cniArgs string
		code    uint   // 0: valid
		field   string // must appear in the error message
		check   func(*testing.T, *NetConf)
	}{
		{name: "defaults", json: `{` + base + `}`, check: func(t *testing.T, n *NetConf) {
			if n.DataDir != defaultDataDir || n.want.changesLink() || len(n.want.sysctls) != 0 {
				t.Errorf("defaults: %+v", n)
			}
		}},
		{name: "every key", json: `{` + base + `,"dataDir":"/tmp/x","sysctl":{"net.ipv4.conf.IFNAME.arp_notify":"1","net.core.somaxconn":"512"},"mac":"0a:58:0a:00:00:05","promisc":true,"mtu":1400,"txQLen":2000,"allmulti":true}`,
			check: func(t *testing.T, n *NetConf) {
				w := n.want
				if n.DataDir != "/tmp/x" || w.mac.String() != "0a:58:0a:00:00:05" || !w.promisc || w.mtu != 1400 || *w.txQLen != 2000 || !*w.allmulti {
					t.Errorf("parsed: %+v", w)
				}
				if !slices.Equal(w.sysctls, Sysctls{{"net.ipv4.conf.IFNAME.arp_notify", "1"}, {"net.core.somaxconn", "512"}}) {
					t.Errorf("sysctls not in the order written: %v", w.sysctls)
				}
			}},
		{name: "MAC precedence: CNI_ARGS over mac", json: `{` + base + `,"mac":"0a:00:00:00:00:01"}`, cniArgs: "IgnoreUnknown=1;MAC=0a:00:00:00:00:02",
			check: wantMAC("0a:00:00:00:00:02")},
		{name: "MAC precedence: runtimeConfig over CNI_ARGS", json: `{` + base + `,"runtimeConfig":{"mac":"0a:00:00:00:00:03"}}`, cniArgs: "MAC=0a:00:00:00:00:02",
			check: wantMAC("0a:00:00:00:00:03")},
		{name: "MAC precedence: args.cni over runtimeConfig", json: `{` + base + `,"runtimeConfig":{"mac":"0a:00:00:00:00:03"},"args":{"cni":{"mac":"0a:00:00:00:00:04"}}}`,
			check: wantMAC("0a:00:00:00:00:04")},
		{name: "args.cni overrides and adds", json: `{` + base + `,"sysctl":{"net.a.b":"1","net.c":"2"},"mtu":1400,"args":{"cni":{"sysctl":{"net.c":"3","net.d":"4"},"promisc":true,"mtu":1300,"allmulti":false,"txQLen":0}}}`,
			check: func(t *testing.T, n *NetConf) {
				w := n.want
				if !slices.Equal(w.sysctls, Sysctls{{"net.a.b", "1"}, {"net.c", "3"}, {"net.d", "4"}}) || !w.promisc || w.mtu != 1300 || *w.allmulti || *w.txQLen != 0 {
					t.Errorf("parsed: %+v", w)
				}
			}},
		{name: "args.cni sysctl without a network sysctl", json: `{` + base + `,"args":{"cni":{"sysctl":{"net.x":"1"}}}}`,
			check: func(t *testing.T, n *NetConf) {
				if !slices.Equal(n.want.sysctls, Sysctls{{"net.x", "1"}}) {
					t.Errorf("sysctls %v", n.want.sysctls)
				}
			}},
		{name: "slash-separated key", json: `{` + base + `,"sysctl":{"net/ipv4/conf/eth0.100/rp_filter":"1"}}`},
		{name: "sysctl outside net", json: `{` + base + `,"sysctl":{"kernel.panic":"1"}}`, code: conf.CodeInvalidConfig, field: `sysctl["kernel.panic"]`},
		{name: "sysctl escaping net", json: `{` + base + `,"sysctl":{"net/../kernel/panic":"1"}}`, code: conf.CodeInvalidConfig, field: "net/../kernel/panic"},
		{name: "sysctl net itself", json: `{` + base + `,"sysctl":{"net":"1"}}`, code: conf.CodeInvalidConfig, field: "sysctl"},
		{name: "args.cni sysctl outside net", json: `{` + base + `,"args":{"cni":{"sysctl":{"vm.swappiness":"1"}}}}`, code: conf.CodeInvalidConfig, field: "vm.swappiness"},
		{name: "duplicated sysctl", json: `{` + base + `,"sysctl":{"net.a":"1","net.a":"2"}}`, code: conf.CodeInvalidConfig, field: "twice"},
		{name: "sysctl value not a string", json: `{` + base + `,"sysctl":{"net.a":1}}`, code: conf.CodeInvalidConfig, field: `sysctl["net.a"]`},
		{name: "sysctl not an object", json: `{` + base + `,"sysctl":["net.a"]}`, code: conf.CodeInvalidConfig, field: "sysctl"},
		{name: "bad mac", json: `{` + base + `,"mac":"zz"}`, code: conf.CodeInvalidConfig, field: "mac"},
		{name: "multicast mac", json: `{` + base + `,"mac":"01:00:00:00:00:01"}`, code: conf.CodeInvalidConfig, field: "mac"},
		{name: "bad CNI_ARGS MAC", json: `{` + base + `}`, cniArgs: "MAC=nope", code: conf.CodeInvalidConfig, field: "CNI_ARGS MAC"},
		{name: "bad runtimeConfig mac", json: `{` + base + `,"runtimeConfig":{"mac":"nope"}}`, code: conf.CodeInvalidConfig, field: "runtimeConfig.mac"},
		{name: "bad args.cni mac", json: `{` + base + `,"args":{"cni":{"mac":"nope"}}}`, code: conf.CodeInvalidConfig, field: "args.cni.mac"},
		{name: "mtu too small", json: `{` + base + `,"mtu":10}`, code: conf.CodeInvalidConfig, field: "mtu"},
		{name: "args.cni mtu too large", json: `{` + base + `,"args":{"cni":{"mtu":70000}}}`, code: conf.CodeInvalidConfig, field: "args.cni.mtu"},
		{name: "negative txQLen", json: `{` + base + `,"txQLen":-1}`, code: conf.CodeInvalidConfig, field: "txQLen"},
		{name: "promisc wrong type", json: `{` + base + `,"promisc":"yes"}`, code: conf.CodeInvalidConfig, field: "promisc"},
		{name: "invalid json", json: `{` + base, code: conf.CodeDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseConfig([]byte(tc.json), tc.cniArgs)
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
			if err == nil && tc.check != nil {
				tc.check(t, n)
			}
		})
	}
}

func wantMAC(mac string) func(*testing.T, *NetConf) {
	return func(t *testing.T, n *NetConf) {
		if n.want.mac.String() != mac {
			t.Errorf("mac %s, want %s", n.want.mac, mac)
		}
	}
}

// DEL reads only dataDir: a configuration ADD refused still lets the chain's DEL through.
func TestParseDel(t *testing.T) {
	for _, tc := range []struct {
		json, dataDir string
		code          uint
	}{
		{json: `{"cniVersion":"1.0.0","name":"n","type":"tuning","sysctl":{"kernel.panic":"1"},"mac":"zz"}`, dataDir: defaultDataDir},
		{json: `{"cniVersion":"1.0.0","name":"n","type":"tuning","dataDir":"/tmp/d"}`, dataDir: "/tmp/d"},
		{json: `{"dataDir":1}`, code: conf.CodeInvalidConfig},
		{json: `{`, code: conf.CodeDecodingFailure},
	} {
		d, err := parseDel([]byte(tc.json))
		if conf.Code(err) != tc.code || (err == nil && d.DataDir != tc.dataDir) {
			t.Errorf("%s: %+v, %v", tc.json, d, err)
		}
	}
}

func TestSysctlPath(t *testing.T) {
	for _, tc := range []struct{ key, ifName, want string }{
		{"net.ipv4.conf.IFNAME.arp_notify", "eth0", "net/ipv4/conf/eth0/arp_notify"},
		{"net.ipv4.conf.IFNAME.arp_notify", "eth0.100", "net/ipv4/conf/eth0.100/arp_notify"},
		{"net/ipv4/conf/eth0.100/rp_filter", "eth0", "net/ipv4/conf/eth0.100/rp_filter"},
		{"net.core.somaxconn", "eth0", "net/core/somaxconn"},
		{"net.ipv6.conf.IFNAME.IFNAME", "eth1", "net/ipv6/conf/eth1/IFNAME"}, // only the first, as the reference
		{"kernel.panic", "eth0", ""},
		{"net.ipv4.conf.IFNAME.x", "../../../kernel", ""},
	} {
		got, err := sysctlPath(tc.key, tc.ifName)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("sysctlPath(%q, %q) = %q, %v; want %q", tc.key, tc.ifName, got, err, tc.want)
		}
	}
}

func TestAllowlist(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "allowlist.conf")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys := Sysctls{{"net.ipv4.conf.IFNAME.arp_notify", "1"}, {"net.core.somaxconn", "1"}}
	for _, tc := range []struct {
		name, file string // file "": none
		code       uint
		naming     string
	}{
		{name: "no file allows all"},
		{name: "all match", file: "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n\n  ^net\\.core\\..*  \n"},
		{name: "unanchored match anywhere", file: "somaxconn\nconf"},
		{name: "one not matched", file: "^net\\.ipv4\\..*$\n", code: conf.CodeInvalidConfig, naming: `sysctl["net.core.somaxconn"]`},
		{name: "empty file allows nothing", file: "\n", code: conf.CodeInvalidConfig, naming: "allows nothing"},
		{name: "bad pattern", file: "net[\n", code: conf.CodeInvalidConfig, naming: "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "none.conf")
			if tc.file != "" {
				p = write(tc.file)
			}
			allow, err := readAllowlist(p)
			if err == nil {
				err = checkAllowed(keys, allow, p)
			}
			if conf.Code(err) != tc.code || (err != nil && !strings.Contains(err.Error(), tc.naming)) {
				t.Errorf("got %v, want code %d naming %q", err, tc.code, tc.naming)
			}
		})
	}
}

// The saved-state file is the reference's, byte for byte: what either plugin wrote, the other restores.
func TestSavedFileFormat(t *testing.T) {
	dir := t.TempDir()
	mac, _ := net.ParseMAC("0a:58:0a:00:00:05")
	q, am := 3000, true
	w := settings{mac: mac, promisc: true, mtu: 1400, allmulti: &am, txQLen: &q}
	s := savedFor(w, link.Attrs{MAC: mac, MTU: 1500, TxQLen: 1000})
	p := savedPath(dir, "ctr1", "eth0")
	if err := writeSaved(p, s); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	const want = "{\n \"mac\": \"0a:58:0a:00:00:05\",\n \"promisc\": false,\n \"mtu\": 1500,\n \"allmulti\": false,\n \"txQLen\": 1000\n}"
	if string(b) != want || filepath.Base(p) != "ctr1_eth0.json" {
		t.Errorf("%s holds\n%s\nwant\n%s", p, b, want)
	}
	// What the reference writes when only the MTU changes.
	if err := os.WriteFile(p, []byte("{\n \"mtu\": 1450\n}"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, ok, err := readSaved(p)
	if err != nil || !ok || got.MTU != 1450 || got.MAC != "" || got.Promisc != nil || got.TxQLen != nil {
		t.Errorf("read %+v %v %v", got, ok, err)
	}
	if err := removeSaved(p); err != nil {
		t.Fatal(err)
	}
	if err := removeSaved(p); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if _, ok, err := readSaved(p); ok || err != nil {
		t.Errorf("read after remove: %v %v", ok, err)
	}
}

// An earlier unfinished ADD's file holds the original values; a second ADD must not overwrite them with
// the tuned ones.
func TestSavedUnderOlder(t *testing.T) {
	on := true
	older := saved{MTU: 1500, Promisc: new(bool)}
	now := saved{MTU: 1400, Promisc: &on, MAC: "0a:00:00:00:00:01"}
	got := now.under(older)
	if got.MTU != 1500 || *got.Promisc || got.MAC != "0a:00:00:00:00:01" {
		t.Errorf("%+v", got)
	}
}

func TestLinkDiffers(t *testing.T) {
	mac, _ := net.ParseMAC("0a:58:0a:00:00:05")
	other, _ := net.ParseMAC("0a:58:0a:00:00:06")
	on, q := true, 500
	have := link.Attrs{MAC: mac, MTU: 1400, Promisc: true, Allmulti: true, TxQLen: 500}
	for _, tc := range []struct {
		name string
		w    settings
		want string // substring; "" matches
	}{
		{name: "all match", w: settings{mac: mac, promisc: true, mtu: 1400, allmulti: &on, txQLen: &q}},
		{name: "MAC", w: settings{mac: other, promisc: true}, want: "MAC is 0a:58:0a:00:00:05"},
		{name: "promisc wanted off", w: settings{}, want: "promiscuous mode is on"},
		{name: "MTU", w: settings{promisc: true, mtu: 1500}, want: "MTU is 1400"},
		{name: "allmulti", w: settings{promisc: true, allmulti: new(bool)}, want: "all-multicast mode is on"},
		{name: "txQLen", w: settings{promisc: true, txQLen: new(int)}, want: "transmit queue length is 500"},
	} {
		got := linkDiffers(tc.w, have)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSameSysctlValue(t *testing.T) {
	if !sameSysctlValue("4096\t87380\t6291456", "4096 87380 6291456") || sameSysctlValue("1", "0") || !sameSysctlValue("1", "1\n") {
		t.Error("sameSysctlValue")
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", NetConf{})
}
