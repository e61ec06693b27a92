package conf

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/netloom/netloom/internal/fuzzseed"

	"github.com/containernetworking/cni/pkg/types"
)

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"mtu":1500}`, `{"mtu":`, ``, `{"mtu":"big"}`, `{"name":"n","mtu":1e400}`,
		`[1]`, `null`, `{"name":{"x":1}}`, "\xff", `{"mtu":1500}{"mtu":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v struct {
			MTU   int            `json:"mtu"`
			Name  string         `json:"name"`
			Flags []bool         `json:"flags"`
			Sub   map[string]int `json:"sub"`
		}
		err := Decode(data, &v)
		if err == nil {
			if !json.Valid(data) {
				t.Fatalf("Decode accepted invalid JSON %q", data)
			}
			return
		}
		if te := fuzzseed.RequireCNIError(t, err); te.Code != CodeDecodingFailure && te.Code != CodeInvalidConfig {
			t.Fatalf("Decode error code %d, want %d or %d: %v", te.Code, CodeDecodingFailure, CodeInvalidConfig, err)
		}
	})
}

func FuzzPrevResult(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"n","type":"t"}`,
		`{"cniVersion":"1.1.0","name":"n","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.88.0.5/16","gateway":"10.88.0.1","interface":0}],"interfaces":[{"name":"eth0","sandbox":"/run/netns/p"}]}}`,
		`{"cniVersion":"0.3.1","name":"n","prevResult":{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.2/24"}]}}`,
		`{"cniVersion":"0.2.0","name":"n","prevResult":{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.2/24","gateway":"10.1.0.1"}}}`,
		`{"cniVersion":"1.0.0","prevResult":{"ips":"x"}}`,
		`{"cniVersion":"9.9.9","prevResult":{}}`,
		`{"cniVersion":"1.0.0","prevResult":{"cniVersion":"1.0.0","routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.0.0.10"]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var nc types.NetConf
		if json.Unmarshal(data, &nc) != nil {
			return
		}
		had := nc.RawPrevResult != nil
		res, err := PrevResult(&nc)
		if err != nil {
			if te := fuzzseed.RequireCNIError(t, err); te.Code != CodeInvalidConfig || !strings.Contains(te.Msg, "prevResult") {
				t.Fatalf("PrevResult error %v: want code 7 naming prevResult", err)
			}
			return
		}
		if had != (res != nil) {
			t.Fatalf("prevResult given: %v, result: %v", had, res)
		}
		if res != nil {
			// The result goes back to the runtime as JSON: it must encode.
			if _, err := json.Marshal(res); err != nil {
				t.Fatalf("parsed prevResult does not encode: %v", err)
			}
		}
		if _, err := CheckPrevResult(&types.NetConf{CNIVersion: nc.CNIVersion}); err == nil {
			t.Fatal("CheckPrevResult accepted a missing prevResult")
		}
	})
}

func FuzzCNIArg(f *testing.F) {
	f.Add("", "IP")
	f.Add("IP=10.0.0.2", "IP")
	f.Add("IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.0.0.2,fd00::2", "IP")
	f.Add(" MAC = 0a:58:00:00:00:01 ", "MAC")
	f.Add("IP=;IP=10.0.0.3", "IP")
	f.Add("a==b;;=;", "a")
	f.Fuzz(func(t *testing.T, args, key string) {
		v, ok := CNIArg(args, key)
		if !ok {
			if v != "" {
				t.Fatalf("CNIArg(%q, %q) = %q without ok", args, key, v)
			}
			return
		}
		if v == "" || v != strings.TrimSpace(v) || strings.Contains(v, ";") {
			t.Fatalf("CNIArg(%q, %q) = %q: want a non-empty, trimmed value without ';'", args, key, v)
		}
		if !strings.Contains(args, v) {
			t.Fatalf("CNIArg(%q, %q) = %q, which is not in the input", args, key, v)
		}
		if key != strings.TrimSpace(key) || key == "" && !strings.Contains(args, "=") {
			t.Fatalf("CNIArg(%q, %q) matched a key no pair can have", args, key)
		}
	})
}

func FuzzPickMAC(f *testing.F) {
	f.Add("", "0a:58:00:00:00:01", "")
	f.Add("zz", "", "01:00:5e:00:00:01")
	f.Add("0a:00:00:00:00:02", "0a:00:00:00:00:03", "00:00:5e:00:53:01:02:03")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		mac, err := PickMAC(MACSource{"a", a}, MACSource{"b", b}, MACSource{"c", c})
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if a == "" && b == "" && c == "" {
			if mac != nil {
				t.Fatalf("no source, MAC %s", mac)
			}
			return
		}
		if len(mac) != 6 || mac[0]&1 != 0 {
			t.Fatalf("PickMAC(%q, %q, %q) = %s: want a unicast Ethernet MAC", a, b, c, mac)
		}
	})
}

func FuzzValidateIfName(f *testing.F) {
	for _, s := range []string{"eth0", "cni-br.100", "123456789012345", "1234567890123456", "", "a/b", "a b",
		"a\tb", "..", ".", "a:b", "é", "nlvx.16777215", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateIfName("bridge", name)
		if err != nil {
			if te := fuzzseed.RequireCNIError(t, err); te.Code != CodeInvalidConfig || !strings.HasPrefix(te.Msg, "bridge: ") {
				t.Fatalf("ValidateIfName(%q) = %v: want code 7 naming the field", name, err)
			}
			return
		}
		if name == "" || len(name) > MaxIfNameLen || name == "." || name == ".." {
			t.Fatalf("ValidateIfName accepted %q", name)
		}
		for _, r := range name {
			if r == '/' || r == ':' || unicode.IsSpace(r) || r < 0x21 || r > 0x7e {
				t.Fatalf("ValidateIfName accepted %q with %q", name, r)
			}
		}
	})
}

func FuzzValidateFileComponent(f *testing.F) {
	for _, s := range []string{"mynet", "abc-123_x.y", "..", ".", "a/b", "../etc", "", "a\x00b", strings.Repeat("x", 256),
		"pods-vxlan", "cni-loopback"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		err := ValidateFileComponent("name", v)
		if err != nil {
			if te := fuzzseed.RequireCNIError(t, err); te.Code != CodeInvalidConfig {
				t.Fatalf("ValidateFileComponent(%q) code %d, want 7", v, te.Code)
			}
			return
		}
		// Accepted: joined under a state directory it names exactly one entry of that directory.
		const dir = "/var/lib/netloom"
		if p := filepath.Join(dir, v); filepath.Dir(p) != dir || filepath.Base(p) != v {
			t.Fatalf("ValidateFileComponent accepted %q, which joins to %q", v, p)
		}
		if strings.ContainsRune(v, 0) || len(v) > 255 {
			t.Fatalf("ValidateFileComponent accepted %q", v)
		}
	})
}
