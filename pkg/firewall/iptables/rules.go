package iptables

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// The names below are the reference plugins' (pkg/ip/ipmasq_iptables_linux.go, pkg/utils): a node that
// moves between the reference bridge plugin and netloom must find the same chains and comments.
const (
	natTable    = "nat"
	postrouting = "POSTROUTING"
	chainPrefix = "CNI-"
	// chainNameLen is the length of every chain the reference masquerade code creates: the prefix and 24
	// hex digits of a SHA-512 hash, short enough for iptables' 28-character chain names.
	chainNameLen = 28
)

// chainNamePattern matches chains that ChainName makes. The portmap plugin's chains (CNI-DN-..., CNI-HOSTPORT-...)
// never match it because they are not pure hex after the prefix.
var chainNamePattern = regexp.MustCompile(`^CNI-[0-9a-f]{24}$`)

var bareWord = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

var (
	multicastV4 = netip.MustParsePrefix("224.0.0.0/4")
	multicastV6 = netip.MustParsePrefix("ff00::/8")
)

// ChainName is the nat chain holding the masquerade rules of one container on one network. Like the
// reference, it leaves out the interface name, so two interfaces of one container on the same network share
// a chain.
func ChainName(network, containerID string) string {
	sum := sha512.Sum512([]byte(network + containerID))
	return (chainPrefix + hex.EncodeToString(sum[:]))[:chainNameLen]
}

// Comment is the comment on every rule of ChainName(network, containerID). It is the reference's, byte for
// byte: the reference deletes its POSTROUTING jump by full rule spec, comment included.
func Comment(network, containerID string) string {
	return fmt.Sprintf("name: %q id: %q", network, containerID)
}

// parseComment inverts Comment; ok is false for a comment Comment cannot have made.
func parseComment(c string) (network, containerID string, ok bool) {
	if _, err := fmt.Sscanf(c, "name: %q id: %q", &network, &containerID); err != nil {
		return "", "", false
	}
	return network, containerID, Comment(network, containerID) == c
}

// spec is one rule's arguments after "-A <chain>", as `iptables -S` prints them; with "-A chain" in front it
// is a valid iptables command line, and with "-D chain" it deletes that rule.
type spec []string

func (s spec) String() string { return render(s) }

// render prints s as iptables -S does: only a comment's text is quoted, when it holds more than letters,
// digits, '-' and '_'.
func render(s spec) string {
	var b strings.Builder
	for i, w := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		if i == 0 || s[i-1] != "--comment" || bareWord.MatchString(w) {
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

// option returns the value after the first occurrence of flag, or "".
func (s spec) option(flag string) string {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == flag {
			return s[i+1]
		}
	}
	return ""
}

// target returns the rule's jump target, or "" if it has none.
func (s spec) target() string { return s.option("-j") }

// comment returns the text of the rule's comment match, or "".
func (s spec) comment() string { return s.option("--comment") }

// canonical returns s with every -s/-d address written as iptables prints it (network address and prefix
// length), so that a spec we build compares equal to the one iptables lists back.
func (s spec) canonical() spec {
	out := slices.Clone(s)
	for i := 1; i < len(out); i++ {
		if out[i-1] != "-s" && out[i-1] != "-d" {
			continue
		}
		if p, err := netip.ParsePrefix(out[i]); err == nil {
			out[i] = p.Masked().String()
		} else if a, err := netip.ParseAddr(out[i]); err == nil {
			out[i] = netip.PrefixFrom(a, a.BitLen()).String()
		}
	}
	return out
}

func (s spec) equal(o spec) bool { return slices.Equal(s.canonical(), o.canonical()) }

func containsSpec(list []spec, s spec) bool {
	return slices.ContainsFunc(list, s.equal)
}

// layout is what one attachment needs in one IP family: its chain's rules in order, and one POSTROUTING
// jump per pod address.
type layout struct {
	chain string
	rules []spec // in chain, in this order
	jumps []spec // in POSTROUTING
}

// desired computes the layout for addrs, which are all of one family and free of duplicates. The chain
// first accepts (leaves alone) traffic to each address's own subnet, then masquerades everything else
// except multicast. (The reference appends each subnet's ACCEPT after the MASQUERADE when a pod has two
// addresses of one family, so its second subnet gets masqueraded; netloom puts every ACCEPT first.)
func desired(network, containerID string, addrs []netip.Prefix) layout {
	l := layout{chain: ChainName(network, containerID)}
	comment := Comment(network, containerID)
	withComment := func(s ...string) spec {
		return append(spec(s), "-m", "comment", "--comment", comment, "-j")
	}
	var subnets []netip.Prefix
	for _, a := range addrs {
		if subnet := a.Masked(); !slices.Contains(subnets, subnet) {
			subnets = append(subnets, subnet)
			l.rules = append(l.rules, append(withComment("-d", subnet.String()), "ACCEPT"))
		}
		host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
		l.jumps = append(l.jumps, append(withComment("-s", host.String()), l.chain))
	}
	if len(addrs) > 0 {
		mcast := multicastV4
		if addrs[0].Addr().Is6() {
			mcast = multicastV6
		}
		l.rules = append(l.rules, append(withComment("!", "-d", mcast.String()), "MASQUERADE"))
	}
	return l
}

// parseRules returns the specs of the "-A chain" lines of `iptables -S` output.
func parseRules(lines []string, chain string) ([]spec, error) {
	var out []spec
	for _, line := range lines {
		words, err := SplitWords(line)
		if err != nil {
			return nil, err
		}
		if len(words) >= 2 && words[0] == "-A" && words[1] == chain {
			out = append(out, spec(words[2:]))
		}
	}
	return out, nil
}

// SplitWords splits one line of `iptables -S` or `iptables-save` output into arguments. iptables puts a
// value that holds anything but letters, digits, '-' and '_' in double quotes, with a backslash before
// each double quote, single quote and backslash. The portmap iptables backend parses whole nat tables
// with it, so a word without quotes is sliced out of line rather than copied.
func SplitWords(line string) ([]string, error) {
	words := make([]string, 0, 16)
	blank := func(c byte) bool { return c == ' ' || c == '\t' }
	for i := 0; i < len(line); {
		if blank(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && !blank(line[j]) && line[j] != '"' {
			j++
		}
		if j == len(line) || line[j] != '"' {
			words = append(words, line[i:j])
			i = j
			continue
		}
		var cur strings.Builder
		cur.WriteString(line[i:j])
		inQuote := false
	word:
		for ; j < len(line); j++ {
			c := line[j]
			switch {
			case inQuote && c == '\\' && j+1 < len(line):
				j++
				cur.WriteByte(line[j])
			case c == '"':
				inQuote = !inQuote
			case !inQuote && blank(c):
				break word
			default:
				cur.WriteByte(c)
			}
		}
		if inQuote {
			return nil, fmt.Errorf("unterminated quote in iptables output %q", line)
		}
		words = append(words, cur.String())
		i = j
	}
	return words, nil
}
