package xtables

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Rule is one rule's arguments after `-A <chain>`, as iptables-save and `iptables -S` print them. With
// "-A chain" in front it is an iptables-restore line that appends it, with "-D chain" one that deletes it.
type Rule []string

// Option returns the value after the first occurrence of flag, or "".
func (r Rule) Option(flag string) string {
	for i := 0; i+1 < len(r); i++ {
		if r[i] == flag {
			return r[i+1]
		}
	}
	return ""
}

// Target returns the rule's jump target, or "" if it has none.
func (r Rule) Target() string { return r.Option("-j") }

// Comment returns the text of the rule's comment match, or "".
func (r Rule) Comment() string { return r.Option("--comment") }

// String prints r as iptables-save does, which is also how iptables-restore reads it back.
func (r Rule) String() string {
	var b strings.Builder
	for i, w := range r {
		if i > 0 {
			b.WriteByte(' ')
		}
		quote := !SafeWord(w) || (i > 0 && r[i-1] == "--comment" && !bareWord(w))
		if !quote {
			b.WriteString(w)
			continue
		}
		b.WriteByte('"')
		for _, c := range []byte(w) {
			if c == '"' || c == '\\' || c == '\'' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	}
	return b.String()
}

// bareWord is what iptables prints without quotes as a comment (xtables_save_string): letters,
// digits, '_' and '-'.
func bareWord(w string) bool { return w != "" && strings.IndexFunc(w, notIn("_-")) < 0 }

// SafeWord tells whether iptables-restore takes w as one argument without quotes: no blank, no quote,
// no backslash. Addresses, port lists, marks and negations are such words.
func SafeWord(w string) bool { return w != "" && strings.IndexFunc(w, notIn("_./:,=+@%^![]-")) < 0 }

// notIn matches a rune that is neither an ASCII letter or digit nor one of punct.
func notIn(punct string) func(rune) bool {
	return func(c rune) bool {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		return !alnum && !strings.ContainsRune(punct, c)
	}
}

// Equal tells whether r and o are the same rule as iptables would print them.
func (r Rule) Equal(o Rule) bool {
	return slices.Equal(r, o) || slices.Equal(r.Canonical(), o.Canonical())
}

// Contains tells whether list holds r, compared as Equal does.
func Contains(list []Rule, r Rule) bool { return slices.ContainsFunc(list, r.Equal) }

// RulesEqual tells whether a and b are the same rules in the same order.
func RulesEqual(a, b []Rule) bool { return slices.EqualFunc(a, b, Rule.Equal) }

// basicFlags are the options every rule has, outside any match module; iptables-save prints them first,
// in basicOrder, whatever order they were given in.
var basicFlags = map[string]string{
	"-s": "-s", "--source": "-s", "--src": "-s",
	"-d": "-d", "--destination": "-d", "--dst": "-d",
	"-i": "-i", "--in-interface": "-i",
	"-o": "-o", "--out-interface": "-o",
	"-p": "-p", "--protocol": "-p",
}

var basicOrder = []string{"-s", "-d", "-i", "-o", "-p"}

// Canonical returns r as iptables-save prints it, as far as that can be told without iptables: basic
// options first and short, addresses as masked prefixes. So a rule built here (or a condition from a
// config) compares equal to the one iptables lists back.
func (r Rule) Canonical() Rule {
	basic := map[string]Rule{}
	var rest Rule
	inTarget := false
	for i := 0; i < len(r); i++ {
		w := r[i]
		if w == "-j" || w == "-g" || w == "--jump" || w == "--goto" {
			inTarget = true
		}
		if inTarget {
			rest = append(rest, w)
			continue
		}
		var neg Rule
		if w == "!" && i+2 < len(r) && basicFlags[r[i+1]] != "" {
			neg = Rule{"!"}
			i++
			w = r[i]
		}
		if f := basicFlags[w]; f != "" && i+1 < len(r) {
			i++
			basic[f] = append(neg, f, canonicalValue(f, r[i]))
			continue
		}
		rest = append(rest, w)
	}
	var out Rule
	for _, f := range basicOrder {
		out = append(out, basic[f]...)
	}
	return append(out, rest...)
}

// canonicalValue writes the value of basic option f as iptables prints it: an address as a masked prefix.
func canonicalValue(f, v string) string {
	if f != "-s" && f != "-d" {
		return v
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked().String()
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return v
}

// splitWords splits one line of iptables-save or `iptables -S` output into arguments. iptables puts a
// value that holds anything but letters, digits, '-' and '_' in double quotes, with a backslash before
// each double quote, single quote and backslash. Whole nat tables go through it, so a word without
// quotes is sliced out of line rather than copied.
func splitWords(line string) ([]string, error) {
	words := make([]string, 0, 16)
	for i := 0; i < len(line); {
		if isBlank(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && !isBlank(line[j]) && line[j] != '"' {
			j++
		}
		if j == len(line) || line[j] != '"' {
			words = append(words, line[i:j])
			i = j
			continue
		}
		w, end, err := quotedWord(line, i, j)
		if err != nil {
			return nil, err
		}
		words = append(words, w)
		i = end
	}
	return words, nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// quotedWord reads the word of line that starts at i and has its first quote at j; end is where it stops.
func quotedWord(line string, i, j int) (w string, end int, err error) {
	var cur strings.Builder
	cur.WriteString(line[i:j])
	inQuote := false
	for ; j < len(line); j++ {
		c := line[j]
		switch {
		case inQuote && c == '\\' && j+1 < len(line):
			j++
			cur.WriteByte(line[j])
		case c == '"':
			inQuote = !inQuote
		case !inQuote && isBlank(c):
			return cur.String(), j, nil
		default:
			cur.WriteByte(c)
		}
	}
	if inQuote {
		return "", 0, fmt.Errorf("unterminated quote in iptables line %q", line)
	}
	return cur.String(), j, nil
}
