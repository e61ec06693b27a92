package ipamconf

import (
	"reflect"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
)

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.10.0.5/24", "10.10.0.5/24"},
		{" fd10::5/64 ", "fd10::5/64"},
		{"::ffff:10.10.0.5/120", "10.10.0.5/24"},
		{"::ffff:0.0.0.0/100", "0.0.0.0/4"},
		{"::ffff:0.0.0.0/90", ""},
		{"10.10.0.5", ""},
		{"fe80::1%eth0/64", ""},
	} {
		p, err := ParsePrefix(tc.in)
		if got := p.String(); (tc.want == "") != (err != nil) || (err == nil && got != tc.want) {
			t.Errorf("ParsePrefix(%q) = %s, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1"},
		{" fd00::1", "fd00::1"},
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{"10.0.0.1/24", ""},
		{"fe80::1%eth0", ""},
		{"x", ""},
	} {
		a, err := ParseAddr(tc.in)
		if (tc.want == "") != (err != nil) || (err == nil && a.String() != tc.want) {
			t.Errorf("ParseAddr(%q) = %s, %v; want %q", tc.in, a, err, tc.want)
		}
	}
}

func TestCNIArgItems(t *testing.T) {
	for _, tc := range []struct {
		args string
		want []Item
	}{
		{"", nil},
		{"IgnoreUnknown=1", nil},
		{"IP=10.0.0.5/24", []Item{{"CNI_ARGS IP", "10.0.0.5/24"}}},
		{"K8S_POD_NAME=a;IP=10.0.0.5/24,fd00::5/64", []Item{{"CNI_ARGS IP (item 0)", "10.0.0.5/24"}, {"CNI_ARGS IP (item 1)", "fd00::5/64"}}},
	} {
		if got := CNIArgItems(tc.args, "IP"); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("CNIArgItems(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestCheckPerFamily(t *testing.T) {
	for _, tc := range []struct {
		version string
		v4, v6  int
		ok      bool
	}{
		{"0.2.0", 1, 1, true},
		{"0.2.0", 2, 0, false},
		{"0.1.0", 0, 2, false},
		{"0.3.0", 2, 2, true},
		{"1.1.0", 3, 0, true},
	} {
		err := CheckPerFamily(tc.version, "addresses", tc.v4, tc.v6)
		if tc.ok != (err == nil) || (err != nil && (conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "cniVersion"))) {
			t.Errorf("CheckPerFamily(%s, %d, %d) = %v", tc.version, tc.v4, tc.v6, err)
		}
	}
}

// An embedding config names the key of a mistyped args.cni.ips as the JSON path, not the Go field.
func TestNetDecodeNamesKey(t *testing.T) {
	var n struct {
		Net
		IPAM struct{} `json:"ipam"`
	}
	err := conf.Decode([]byte(`{"cniVersion":"1.0.0","name":"n","args":{"cni":{"ips":5}}}`), &n)
	if err == nil || !strings.Contains(err.Error(), "args.cni.ips") {
		t.Fatalf("err %v, want one naming args.cni.ips", err)
	}
	if err := conf.Decode([]byte(`{"cniVersion":"1.0.0","name":"n","args":{"cni":{"ips":["10.0.0.5/24"]}}}`), &n); err != nil || n.Args.CNI.IPs[0] != "10.0.0.5/24" || n.Name != "n" {
		t.Fatalf("decode: %v %+v", err, n)
	}
}
