package hostlink

import "testing"

func TestModes(t *testing.T) {
	ms := Modes[int]{Default: 2, List: []Mode[int]{{"one", 1}, {"two", 2}}}
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{{"", 2, true}, {"one", 1, true}, {"two", 2, true}, {"three", 0, false}} {
		if got, ok := ms.Parse(c.in); got != c.want || ok != c.ok {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if ms.Name(1) != "one" || ms.Name(7) != "unknown" {
		t.Errorf("Name: %q, %q", ms.Name(1), ms.Name(7))
	}
}
