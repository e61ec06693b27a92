package conf

import "testing"

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
