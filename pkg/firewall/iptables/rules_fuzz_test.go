package iptables

import (
	"slices"
	"strings"
	"testing"
)

func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{
		`-A X -s 10.0.0.1/32 -j Y`,
		`-A X -m comment --comment "name: \"a\\\\b\'c\" id: \"1\"" -j Y`,
		`-A X -m comment --comment "" -j Y`,
		"  a\t b\"c d\"e \"\\\"\"  ",
		`-A X --comment "open`,
		`-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"netloom\" id: \"0123abcd\"" -j CNI-0123456789abcdef01234567`,
		`"\`, `""""`, "\"\t\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := SplitWords(line)
		if err != nil {
			if !strings.Contains(line, `"`) {
				t.Fatalf("SplitWords(%q) failed without a quote: %v", line, err)
			}
			return
		}
		if !strings.Contains(line, `"`) {
			// Without quotes it is a plain split on blanks.
			if want := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' }); !slices.Equal(words, want) {
				t.Fatalf("SplitWords(%q) = %q, want %q", line, words, want)
			}
		}
		for _, w := range words {
			if len(w) > len(line) {
				t.Fatalf("SplitWords(%q): word %q longer than the line", line, w)
			}
		}
	})
}

// FuzzRenderSplit holds render and SplitWords to be inverses: a rule we render (as iptables -S prints it)
// reads back as the same arguments, whatever its comment holds.
func FuzzRenderSplit(f *testing.F) {
	f.Add(`name: "netloom" id: "0123abcd"`, "ACCEPT")
	f.Add(`a\b'c"d`, "CNI-0123456789abcdef01234567")
	f.Add("", "MASQUERADE")
	f.Add("tab\there  two spaces", "X")
	f.Fuzz(func(t *testing.T, comment, target string) {
		if target == "" || strings.ContainsAny(target, " \t\"") {
			return // iptables chain names hold neither blanks nor quotes
		}
		s := spec{"-d", "10.88.0.0/16", "-m", "comment", "--comment", comment, "-j", target}
		words, err := SplitWords("-A " + target + " " + render(s))
		if err != nil || !slices.Equal(words[2:], []string(s)) {
			t.Fatalf("render %q reads back as %q, %v", render(s), words, err)
		}
		got, err := parseRules([]string{"-N " + target, "-A " + target + " " + render(s), "-A OTHER -j " + target}, target)
		if err != nil || len(got) != 1 || !got[0].equal(s) || got[0].comment() != comment || got[0].target() != target {
			t.Fatalf("parseRules of %q = %q, %v", render(s), got, err)
		}
	})
}

func FuzzParseRules(f *testing.F) {
	f.Add("-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.88.0.5/32 -m comment --comment \"name: \\\"n\\\" id: \\\"c\\\"\" -j CNI-x\n-A CNI-x -d 10.88.0.0/16 -j ACCEPT", "POSTROUTING")
	f.Add("-N CNI-x\n-A CNI-x ! -d 224.0.0.0/4 -j MASQUERADE\n-A CNI-x", "CNI-x")
	f.Add("-A X \"unterminated", "X")
	f.Fuzz(func(t *testing.T, out, chain string) {
		lines := strings.Split(out, "\n")
		specs, err := parseRules(lines, chain)
		if err != nil {
			return
		}
		n := 0
		for _, l := range lines {
			if w, _ := SplitWords(l); len(w) >= 2 && w[0] == "-A" && w[1] == chain {
				n++
			}
		}
		if len(specs) != n {
			t.Fatalf("parseRules found %d rules of %s, want %d", len(specs), chain, n)
		}
		for _, s := range specs {
			_ = s.String()
			_ = s.canonical()
		}
	})
}

// FuzzComment holds parseComment to invert Comment for any network name and container ID.
func FuzzComment(f *testing.F) {
	f.Add("netloom", "0123abcd")
	f.Add(`a"b\c`, "id with spaces")
	f.Add("\xff\x00", "")
	f.Fuzz(func(t *testing.T, network, containerID string) {
		c := Comment(network, containerID)
		n, id, ok := parseComment(c)
		if !ok || n != network || id != containerID {
			t.Fatalf("parseComment(Comment(%q, %q)) = %q, %q, %v", network, containerID, n, id, ok)
		}
		if name := ChainName(network, containerID); !chainNamePattern.MatchString(name) {
			t.Fatalf("ChainName = %q", name)
		}
	})
}
