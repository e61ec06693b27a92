package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/netloom/netloom/pkg/conf"
)

// allowlistFile is the node's list of sysctls that pods may set through tuning, as in the reference:
// one regular expression a line; when the file exists, a key no line matches is refused at ADD.
const allowlistFile = "/etc/cni/tuning/allowlist.conf"

// readAllowlist returns the patterns of the allow-list at path, or nil when there is no such file
// (then every net. sysctl is allowed).
func readAllowlist(path string) ([]*regexp.Regexp, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, conf.IOFailure("sysctl allow-list: %v", err)
	}
	out := []*regexp.Regexp{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		re, err := regexp.Compile(line)
		if err != nil {
			return nil, conf.Invalid("sysctl", "the node's allow-list %s, line %d: %q is not a regular expression: %v", path, i+1, line, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// checkAllowed refuses the first key of s that no pattern matches. As in the reference, a pattern
// matches anywhere in the key as written (before IFNAME is replaced): anchor it (^...$) to match
// whole keys. A nil list allows everything.
func checkAllowed(s Sysctls, allow []*regexp.Regexp, path string) error {
	if allow == nil {
		return nil
	}
	for _, kv := range s {
		ok := false
		for _, re := range allow {
			if re.MatchString(kv.Key) {
				ok = true
				break
			}
		}
		if !ok {
			return conf.Invalid(fmt.Sprintf("sysctl[%q]", kv.Key), "is not allowed on this node: no line of %s matches it (%s)", path, patterns(allow))
		}
	}
	return nil
}

func patterns(res []*regexp.Regexp) string {
	if len(res) == 0 {
		return "the file allows nothing"
	}
	s := make([]string, len(res))
	for i, re := range res {
		s[i] = re.String()
	}
	return "allowed: " + strings.Join(s, ", ")
}
