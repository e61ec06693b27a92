package addrholder

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/run/netns/pod1`:          "/run/netns/pod1",
		`/run/netns/with\040space`: "/run/netns/with space",
		`/run/a\134b`:              `/run/a\b`,
		`/trailing\04`:             `/trailing\04`,
		`/not\xyzoctal`:            `/not\xyzoctal`,
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
