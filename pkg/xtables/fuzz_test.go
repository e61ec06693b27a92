package xtables

import (
	"slices"
	"strings"
	"testing"
	"unicode"
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
		words, err := splitWords(line)
		if err != nil {
			if !strings.Contains(line, `"`) {
				t.Fatalf("splitWords(%q) failed without a quote: %v", line, err)
			}
			return
		}
		if !strings.Contains(line, `"`) {
			// Without quotes it is a plain split on blanks.
			if want := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' }); !slices.Equal(words, want) {
				t.Fatalf("splitWords(%q) = %q, want %q", line, words, want)
			}
		}
		for _, w := range words {
			if len(w) > len(line) {
				t.Fatalf("splitWords(%q): word %q longer than the line", line, w)
			}
		}
	})
}

// FuzzRenderParse holds Rule.String and Parse to be inverses: a rule printed as iptables-save prints it
// reads back as the same arguments, whatever its comment and its other values hold, and compares equal.
func FuzzRenderParse(f *testing.F) {
	f.Add(`name: "netloom" id: "0123abcd"`, "ACCEPT", "10.88.0.0/16")
	f.Add(`a\b'c"d`, "CNI-0123456789abcdef01234567", "fd00::1")
	f.Add("", "MASQUERADE", "")
	f.Add("tab\there  two spaces", "X", "a b")
	f.Add("0", "\v", "0") // a target that is white space: no chain name, skipped
	f.Fuzz(func(t *testing.T, comment, target, value string) {
		if target == "" || strings.ContainsFunc(target, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '\\' }) ||
			strings.ContainsAny(comment+value, "\n\r") {
			return // chain names hold no blanks, quotes or backslashes; iptables output is line based
		}
		r := Rule{"-d", "10.88.0.0/16", "-m", "comment", "--comment", comment, "-m", "x", "--x", value, "-j", target}
		words, err := splitWords("-A " + target + " " + r.String())
		if err != nil || !slices.Equal(words[2:], []string(r)) {
			t.Fatalf("%s reads back as %q, %v", r, words, err)
		}
		text := "*nat\n:" + target + " - [0:0]\n-A " + target + " " + r.String() + "\n-A OTHER -j " + target + "\nCOMMIT\n"
		tb, err := Parse(text, "nat", nil)
		if err != nil {
			t.Fatalf("Parse of %q: %v", text, err)
		}
		got := tb.Rules[target]
		if len(got) != 1 || !got[0].Equal(r) || got[0].Comment() != comment || got[0].Target() != target {
			t.Fatalf("Parse of %q = %q", text, got)
		}
		if j := tb.JumpsTo("OTHER", target); len(j) != 1 {
			t.Fatalf("jumps to %s: %q", target, j)
		}
	})
}

// FuzzParse feeds Parse any text: it fails or returns a table whose every rule prints, canonicalises,
// and lives in a chain that has an -A line in the text.
func FuzzParse(f *testing.F) {
	f.Add("-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.88.0.5/32 -m comment --comment \"name: \\\"n\\\" id: \\\"c\\\"\" -j CNI-x\n-A CNI-x -d 10.88.0.0/16 -j ACCEPT", "nat")
	f.Add("-N CNI-x\n-A CNI-x ! -d 224.0.0.0/4 -j MASQUERADE\n-A CNI-x", "nat")
	f.Add("-A X \"unterminated", "nat")
	f.Add(saveText, "nat")
	f.Add(saveText, "filter")
	f.Fuzz(func(t *testing.T, text, table string) {
		tb, err := Parse(text, table, CNIChains)
		if err != nil {
			return
		}
		for chain, rules := range tb.Rules {
			if !CNIChains(chain) || !appendsTo(text, chain) {
				t.Fatalf("rules of chain %q kept from %q", chain, text)
			}
			for _, r := range rules {
				_ = r.String()
				_ = r.Canonical()
			}
		}
	})
}

// appendsTo reports whether a line of text appends to chain: "-A", blanks, then the chain's name.
func appendsTo(text, chain string) bool {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "-A ")
		if after, ok2 := strings.CutPrefix(strings.TrimLeft(rest, " \t"), chain); ok && ok2 && (after == "" || after[0] == ' ' || after[0] == '\t') {
			return true
		}
	}
	return false
}
