package conf

import "testing"

func TestCNIArg(t *testing.T) {
	for _, c := range []struct {
		args, key, want string
		ok              bool
	}{
		{"", "IP", "", false},
		{"IP=10.0.0.2", "IP", "10.0.0.2", true},
		{"IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.0.0.2,fd00::2", "IP", "10.0.0.2,fd00::2", true},
		{"ip=10.0.0.2", "IP", "", false},
		{"IP=", "IP", "", false},
		{" MAC = 0a:58:00:00:00:01 ", "MAC", "0a:58:00:00:00:01", true},
		{"IPX=1", "IP", "", false},
	} {
		got, ok := CNIArg(c.args, c.key)
		if got != c.want || ok != c.ok {
			t.Errorf("CNIArg(%q, %q) = %q, %v; want %q, %v", c.args, c.key, got, ok, c.want, c.ok)
		}
	}
}
