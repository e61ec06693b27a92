package plugin

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
)

// What the runtime reads for a command's error: the skeleton keeps only the first *types.Error it finds
// (errors.As), so guard must hand it one that carries the code and all of the context.
func TestGuardKeepsCodeAndContext(t *testing.T) {
	args := &Args{ContainerID: "ctr1", StdinData: []byte(`{"name":"net"}`)}
	for _, tc := range []struct {
		name string
		err  error
		code uint
		msg  string
	}{
		{"wrapped coded error", fmt.Errorf("portmap net/ctr1/eth0 (iptables backend): %w", conf.TryAgain("the xtables lock is held")),
			conf.CodeTryAgainLater, "portmap net/ctr1/eth0 (iptables backend): the xtables lock is held"},
		{"plain error", errors.New("netlink: operation not permitted"), conf.CodeInternal, "netlink: operation not permitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := guard(func(*Args) error { return tc.err })(args)
			var te *types.Error
			if !errors.As(err, &te) || te.Code != tc.code || te.Msg != tc.msg {
				t.Errorf("the runtime would read %+v, want code %d %q", te, tc.code, tc.msg)
			}
		})
	}
	if err := guard(func(*Args) error { panic("x") })(args); conf.Code(err) != conf.CodeInternal {
		t.Errorf("panic: %v, want code 999", err)
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
