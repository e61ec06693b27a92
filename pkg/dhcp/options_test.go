package dhcp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netloom/netloom/pkg/conf"
)

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ipam     IPAMConfig
		args     string
		code     uint
		provided map[uint8][]string // option -> values, in order
		request  []uint8            // the parameter request list, sorted; nil: none sent
	}{
		{name: "defaults", request: []uint8{1, 3}},
		{name: "provide value and fromArg", ipam: IPAMConfig{ProvideOptions: []ProvideOption{
			{Option: "host-name", Value: "fixed"},
			{Option: "12", FromArg: "K8S_POD_NAME"},
			{Option: "user-class", FromArg: "MISSING"},
		}}, args: "IgnoreUnknown=1;K8S_POD_NAME=web-0", provided: map[uint8][]string{12: {"web-0"}}, request: []uint8{1, 3}},
		{name: "value then fromArg of the same option", ipam: IPAMConfig{ProvideOptions: []ProvideOption{
			{Option: "host-name", Value: "fixed", FromArg: "K8S_POD_NAME"},
		}}, args: "K8S_POD_NAME=web-0", provided: map[uint8][]string{12: {"web-0"}}, request: []uint8{1, 3}},
		{name: "request adds to the defaults", ipam: IPAMConfig{RequestOptions: []RequestOption{{Option: "6"}, {Option: "routers"}}}, request: []uint8{1, 3, 6}},
		{name: "skipDefault", ipam: IPAMConfig{RequestOptions: []RequestOption{{SkipDefault: true}, {Option: "121"}}}, request: []uint8{121}},
		{name: "skipDefault alone sends no list", ipam: IPAMConfig{RequestOptions: []RequestOption{{SkipDefault: true}}}},
		{name: "CNI_ARGS value too long", ipam: IPAMConfig{ProvideOptions: []ProvideOption{{Option: "host-name", FromArg: "H"}}},
			args: "H=" + strings.Repeat("x", 256), code: conf.CodeInvalidEnvironment},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := Options(&tc.ipam, tc.args)
			if got := conf.Code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if err != nil {
				return
			}
			// As the daemon applies them: later options of the same code replace earlier ones.
			msg, _ := dhcpv4.New(withOptions(opts))
			for code, vals := range tc.provided {
				if got := string(msg.GetOneOption(dhcpv4.GenericOptionCode(code))); got != vals[len(vals)-1] {
					t.Errorf("option %d = %q, want %q", code, got, vals[len(vals)-1])
				}
			}
			var got []uint8
			for _, c := range msg.ParameterRequestList() {
				got = append(got, c.Code())
			}
			if !bytes.Equal(sorted(got), tc.request) {
				t.Errorf("parameter request list %v, want %v", got, tc.request)
			}
		})
	}
}

func sorted(b []uint8) []uint8 {
	out := append([]uint8(nil), b...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func TestClientID(t *testing.T) {
	if got := ClientID("ctr", "net", "eth0"); got != "ctr/net/eth0" {
		t.Errorf("ClientID = %q", got)
	}
	long := ClientID(strings.Repeat("c", 300), "net", "eth0")
	if len(long) != maxClientID || long != strings.Repeat("c", maxClientID) {
		t.Errorf("long ClientID has %d bytes", len(long))
	}
	// On the wire: type 0, then the identifier.
	msg, _ := dhcpv4.New(withClientID("ctr/net/eth0"))
	if got := msg.GetOneOption(dhcpv4.OptionClientIdentifier); string(got) != "\x00ctr/net/eth0" {
		t.Errorf("option 61 = %q", got)
	}
}

func TestParseOptionName(t *testing.T) {
	for name, want := range map[string]uint8{"routers": 3, "subnet-mask": 1, "host-name": 12, "dhcp-client-identifier": 61,
		"user-class": 77, "vendor-class-identifier": 60, "1": 1, "254": 254} {
		code, err := ParseOptionName(name)
		if err != nil || code.Code() != want {
			t.Errorf("%q: %v %v, want %d", name, code, err, want)
		}
	}
	for _, bad := range []string{"", "0", "255", "256", "-1", "router", "0x3"} {
		if _, err := ParseOptionName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
