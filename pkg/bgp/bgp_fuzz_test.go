package bgp

import (
	"fmt"
	"strings"
	"testing"
)

func FuzzParseCommunity(f *testing.F) {
	for _, s := range []string{"65001:100", "65000:100", "no-export", "NO-ADVERTISE", "local-as", "no-export-subconfed",
		"70000:1", "100", ":", "0:0", "65535:65535", "+1:2", "1:2:3", " 1:2", "0x10:1", "1_0:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseCommunity(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseCommunity(%q): empty error", s)
			}
			return
		}
		switch strings.ToLower(s) {
		case "no-export", "no-advertise", "no-export-subconfed", "local-as":
			if v>>16 != 0xFFFF {
				t.Fatalf("well-known %q = %#x, outside the well-known range", s, v)
			}
			return
		}
		// ASN:VALUE reads back from its canonical form.
		canon := fmt.Sprintf("%d:%d", v>>16, v&0xFFFF)
		if back, err := ParseCommunity(canon); err != nil || back != v {
			t.Fatalf("ParseCommunity(%q) = %#x, but %q reads as %#x, %v", s, v, canon, back, err)
		}
		hi, lo, _ := strings.Cut(s, ":")
		if fmt.Sprintf("%d", v>>16) != strings.TrimLeft(hi, "0")+zeroIfEmpty(hi) || fmt.Sprintf("%d", v&0xFFFF) != strings.TrimLeft(lo, "0")+zeroIfEmpty(lo) {
			t.Fatalf("ParseCommunity(%q) = %d:%d", s, v>>16, v&0xFFFF)
		}
	})
}

// zeroIfEmpty is "0" for an all-zero decimal ("000"), which strings.TrimLeft empties.
func zeroIfEmpty(digits string) string {
	if strings.TrimLeft(digits, "0") == "" {
		return "0"
	}
	return ""
}
