package conf

import (
	"regexp"
	"testing"
)

// isSpecName is the specification's regexp, written out.
func TestIsSpecNameMatchesTheSpecRegexp(t *testing.T) {
	spec := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)
	for _, s := range []string{"", "a", "A", "0", "_", ".", "-", "a_b.c-d", "a b", "a/b", "é", "aé", "abc\n",
		"ctr-0123456789abcdef", "-a", ".a", "a..", "Z9_", "a:b", "a\x00"} {
		if got, want := isSpecName(s), spec.MatchString(s); got != want {
			t.Errorf("isSpecName(%q) = %v, the specification's regexp says %v", s, got, want)
		}
	}
}

func FuzzIsSpecName(f *testing.F) {
	spec := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)
	for _, s := range []string{"", "a", "a-b", "-a", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isSpecName(s), spec.MatchString(s); got != want {
			t.Errorf("isSpecName(%q) = %v, the specification's regexp says %v", s, got, want)
		}
	})
}
