package conf

import (
	"strings"
	"testing"
)

func TestValidateIfName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"eth0", true},
		{"cni-br.100", true},
		{"123456789012345", true},
		{"1234567890123456", false},
		{"", false},
		{"a/b", false},
		{"a b", false},
		{"a\tb", false},
		{"..", false},
		{"a:b", false},
	} {
		err := ValidateIfName("bridge", tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateIfName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && Code(err) != CodeInvalidConfig {
			t.Errorf("ValidateIfName(%q) code %d, want %d", tc.name, Code(err), CodeInvalidConfig)
		}
	}
}

func TestValidateFileComponent(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"mynet", true},
		{"abc-123_x.y", true},
		{"..", false},
		{".", false},
		{"a/b", false},
		{"../etc", false},
		{"", false},
	} {
		if err := ValidateFileComponent("name", tc.v); (err == nil) != tc.ok {
			t.Errorf("ValidateFileComponent(%q) = %v, want ok=%v", tc.v, err, tc.ok)
		}
	}
}

func TestDecode(t *testing.T) {
	var v struct {
		MTU  int    `json:"mtu"`
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		in   string
		code uint
	}{
		{`{"mtu":1500}`, 0},
		{`{"mtu":`, CodeDecodingFailure},
		{``, CodeDecodingFailure},
		{`{"mtu":"big"}`, CodeInvalidConfig},
	} {
		err := Decode([]byte(tc.in), &v)
		if Code(err) != tc.code {
			t.Errorf("Decode(%q) = %v (code %d), want code %d", tc.in, err, Code(err), tc.code)
		}
	}
}

func TestValidateSpecNames(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"ctr-a", true}, {"cnitool-981f7988835fc1454a50", true}, {"A.b_c-9", true}, {"0", true},
		{"", false}, {"-lead", false}, {".hidden", false}, {"_x", false}, {"a/b", false}, {"../x", false},
		{"a b", false}, {"a\"b", false}, {"a\nb", false}, {"é", false}, {strings.Repeat("a", 256), false},
	} {
		if err := ValidateContainerID(tc.v); (err == nil) != tc.ok {
			t.Errorf("ValidateContainerID(%q) = %v, want ok %v", tc.v, err, tc.ok)
		} else if err != nil && Code(err) != CodeInvalidEnvironment {
			t.Errorf("ValidateContainerID(%q): code %d, want %d", tc.v, Code(err), CodeInvalidEnvironment)
		}
		if err := ValidateNetworkName(tc.v); (err == nil) != tc.ok {
			t.Errorf("ValidateNetworkName(%q) = %v, want ok %v", tc.v, err, tc.ok)
		} else if err != nil && (Code(err) != CodeInvalidConfig || !strings.Contains(err.Error(), "name")) {
			t.Errorf("ValidateNetworkName(%q): %v, want code 7 naming name", tc.v, err)
		}
	}
}
