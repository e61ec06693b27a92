package xtables

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`-A X -s 10.0.0.1/32 -j Y`, []string{"-A", "X", "-s", "10.0.0.1/32", "-j", "Y"}},
		{`-A X -m comment --comment simple -j Y`, []string{"-A", "X", "-m", "comment", "--comment", "simple", "-j", "Y"}},
		{`-A X -m comment --comment "name: \"a\\\\b\'c\" id: \"1\"" -j Y`,
			[]string{"-A", "X", "-m", "comment", "--comment", `name: "a\\b'c" id: "1"`, "-j", "Y"}},
		{`-A X -m comment --comment "" -j Y`, []string{"-A", "X", "-m", "comment", "--comment", "", "-j", "Y"}},
		{"  a\t b\"c d\"e \"\\\"\"  ", []string{"a", `bc de`, `"`}},
	} {
		got, err := splitWords(tc.line)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitWords(%s) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	if _, err := splitWords(`-A X --comment "open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

// String prints a rule as iptables-save does: a comment in quotes unless it is letters, digits, '-' and
// '_' only; any other word only when iptables-restore would not read it as one argument.
func TestRuleString(t *testing.T) {
	for _, tc := range []struct {
		r    Rule
		want string
	}{
		{Rule{"-m", "comment", "--comment", `a "b" c'd e\f`, "--comment", "", "-d", "10.0.0.0/8", "-j", "DNAT",
			"--to-destination", "[fd00::1]:80", "!", "--mark", "0x1/0x1"},
			`-m comment --comment "a \"b\" c\'d e\\f" --comment "" -d 10.0.0.0/8 -j DNAT --to-destination [fd00::1]:80 ! --mark 0x1/0x1`},
		{Rule{"-m", "comment", "--comment", "bare-word_1", "-j", "ACCEPT"}, `-m comment --comment bare-word_1 -j ACCEPT`},
		{Rule{"-m", "comment", "--comment", "a.b", "-j", "ACCEPT"}, `-m comment --comment "a.b" -j ACCEPT`},
		{Rule{"--dports", "80,443", "-m", "x", "--opt", "has space"}, `--dports 80,443 -m x --opt "has space"`},
	} {
		got := tc.r.String()
		if got != tc.want {
			t.Errorf("String()\n got %s\nwant %s", got, tc.want)
		}
		words, err := splitWords(got)
		if err != nil || !slices.Equal(words, tc.r) {
			t.Errorf("%s reads back as %q, %v", got, words, err)
		}
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// iptables-save moves basic options first, in the order -s -d -i -o -p, and prints prefixes.
		{`-p tcp -m comment --comment x -m multiport --dports 80 ! --source 192.0.2.7 -i eth1 -d 10.0.0.1/8 -j CNI-DN-x`,
			`! -s 192.0.2.7/32 -d 10.0.0.0/8 -i eth1 -p tcp -m comment --comment x -m multiport --dports 80 -j CNI-DN-x`},
		{`-p tcp -m mark ! --mark 0x1 -j X`, `-p tcp -m mark ! --mark 0x1 -j X`},
		{`-d 2001:db8::1 -p udp -j DNAT --to-destination [fd00::5]:53`, `-d 2001:db8::1/128 -p udp -j DNAT --to-destination [fd00::5]:53`},
		{`! -d 224.0.0.0/4 -m comment --comment x -j MASQUERADE`, `! -d 224.0.0.0/4 -m comment --comment x -j MASQUERADE`},
		{`-s 10.1.2.5/24 -j CNI-x`, `-s 10.1.2.0/24 -j CNI-x`},
		// Arguments of the target are not options of the rule.
		{`-j MARK -s 1`, `-j MARK -s 1`},
	} {
		r := Rule(strings.Fields(tc.in))
		got := r.Canonical().String()
		if got != tc.want {
			t.Errorf("Canonical(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
		if !r.Equal(Rule(strings.Fields(tc.want))) {
			t.Errorf("%s does not equal its canonical form", tc.in)
		}
	}
	a, b := Rule{"-s", "10.0.0.1", "-j", "X"}, Rule{"-s", "10.0.0.2", "-j", "X"}
	if a.Equal(b) || Contains([]Rule{b}, a) || !Contains([]Rule{b, a}, Rule{"-s", "10.0.0.1/32", "-j", "X"}) {
		t.Error("Equal or Contains mixes up different rules")
	}
	if !RulesEqual([]Rule{a, b}, []Rule{a, b}) || RulesEqual([]Rule{a, b}, []Rule{b, a}) {
		t.Error("RulesEqual ignores order")
	}
	if a.Target() != "X" || a.Option("-s") != "10.0.0.1" || a.Comment() != "" || a.Option("-j") != "X" {
		t.Error("option lookup")
	}
}

// SafeWord and bareWord are the character classes iptables quotes by, as the patterns they replaced
// wrote them (kept here, where compiling them costs a test and not every plugin process).
func TestWordClasses(t *testing.T) {
	safe := regexp.MustCompile(`^[A-Za-z0-9_./:,=+@%^!\[\]-]+$`)
	bare := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	for _, w := range []string{"", "a", "CNI-DN-1", "10.0.0.1/32", "!", "0x2000/0x2000", "[::1]:80", "a b", `a"b`, `a\b`,
		"a'b", "é", "a\tb", "a;b", "a|b", "a*", "a{b}", "a(b)", "a#b", "a$b", "a&b", "a<b", "a~", "a`b", "a?b", "_", "-"} {
		if got, want := SafeWord(w), safe.MatchString(w); got != want {
			t.Errorf("SafeWord(%q) = %v, the pattern says %v", w, got, want)
		}
		if got, want := bareWord(w), bare.MatchString(w); got != want {
			t.Errorf("bareWord(%q) = %v, the pattern says %v", w, got, want)
		}
	}
}
