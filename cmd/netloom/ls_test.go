package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestLsUsage(t *testing.T) {
	for _, args := range [][]string{{"stray"}, {"--no-such-flag"}, {"-h"}} {
		var out, errb bytes.Buffer
		if code := lsCommand(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage: netloom ls") || out.Len() != 0 {
			t.Errorf("ls %v: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", args, code, out.String(), errb.String())
		}
	}
}
