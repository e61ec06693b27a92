package plugin

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
)

// What the runtime reads for a command's error: the code of the first CNI error in it and all of the
// context around it, and for a panic code 999 with no Go stack on stdout.
func TestDispatchKeepsCodeAndContext(t *testing.T) {
	env := podEnv("ADD")
	for _, tc := range []struct {
		name string
		f    func(*Args) error
		code uint
		msg  string
	}{
		{"wrapped coded error", func(*Args) error {
			return fmt.Errorf("portmap net/ctr1/eth0 (iptables backend): %w", conf.TryAgain("the xtables lock is held"))
		}, conf.CodeTryAgainLater, "portmap net/ctr1/eth0 (iptables backend): the xtables lock is held"},
		{"plain error", func(*Args) error { return errors.New("netlink: operation not permitted") }, conf.CodeInternal, "netlink: operation not permitted"},
		{"panic", func(*Args) error { panic("x") }, conf.CodeInternal, "internal error (please report): x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout bytes.Buffer
			c := call{getenv: func(k string) string { return env[k] }, stdin: strings.NewReader(`{"cniVersion":"1.1.0","name":"net"}`), stdout: &stdout}
			if e := c.dispatch(Funcs{Add: tc.f}, ""); e == nil || e.Code != tc.code || e.Msg != tc.msg || stdout.Len() > 0 {
				t.Errorf("the runtime would read %+v (stdout %q), want code %d %q", e, stdout.String(), tc.code, tc.msg)
			}
		})
	}
}

func TestVerbsParseOnce(t *testing.T) {
	parsed := 0
	v := Verbs[string]{
		Parse: func(a *Args) (string, error) {
			parsed++
			if string(a.StdinData) == "bad" {
				return "", conf.Invalid("x", "bad")
			}
			return string(a.StdinData), nil
		},
		Add: func(c string, _ *Args) error {
			if c != "good" {
				t.Errorf("Add got %q", c)
			}
			return nil
		},
	}
	f := v.Funcs()
	if f.Del != nil || f.Check != nil || f.GC != nil || f.Status != nil {
		t.Error("commands left nil must stay nil")
	}
	if err := f.Add(&Args{StdinData: []byte("good")}); err != nil || parsed != 1 {
		t.Errorf("Add: %v after %d parses", err, parsed)
	}
	if err := f.Add(&Args{StdinData: []byte("bad")}); conf.Code(err) != conf.CodeInvalidConfig {
		t.Errorf("Add with a bad config: %v, want Parse's error", err)
	}
}

func TestSetupLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netloom.log")
	t.Setenv(LogFileEnv, path)
	out, flags, prefix := log.Writer(), log.Flags(), log.Prefix()
	t.Cleanup(func() { log.SetOutput(out); log.SetFlags(flags); log.SetPrefix(prefix) })
	closeLog := setupLog("demo")
	LogError("rollback: remove veth", errors.New("no such device"))
	LogError("nothing", nil)
	closeLog()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if !strings.Contains(got, fmt.Sprintf("netloom demo[%d]: rollback: remove veth: no such device", os.Getpid())) || strings.Count(got, "\n") != 1 {
		t.Errorf("log file holds %q", got)
	}
}
