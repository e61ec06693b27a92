package link

import (
	"strings"
	"testing"
)

func TestRandomName(t *testing.T) {
	seen := map[string]bool{}
	for _, prefix := range []string{"veth", "nl", "netloom"} {
		for range 100 {
			n, err := RandomName(prefix)
			if err != nil {
				t.Fatal(err)
			}
			if len(n) > 15 || !strings.HasPrefix(n, prefix) {
				t.Fatalf("RandomName(%q) = %q", prefix, n)
			}
			if seen[n] {
				t.Fatalf("RandomName repeated %q", n)
			}
			seen[n] = true
		}
	}
	if _, err := RandomName("averylongprefix"); err == nil {
		t.Fatal("RandomName accepted a prefix that leaves no room")
	}
}
