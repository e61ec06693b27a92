package plugin

import (
	"bytes"
	"errors"
	"log"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netloom/netloom/pkg/conf"
)

// captureLog sends the standard logger to a buffer for the test.
func captureLog(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	out, flags, prefix := log.Writer(), log.Flags(), log.Prefix()
	log.SetOutput(&buf)
	log.SetFlags(0)
	log.SetPrefix("")
	t.Cleanup(func() { log.SetOutput(out); log.SetFlags(flags); log.SetPrefix(prefix) })
	return &buf
}

func TestAddRun(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		failAt   string // step that fails; "" none
		undoFail string // undo that fails
		wantRan  []string
		wantUndo []string
		wantLog  []string
	}{
		{name: "all succeed", wantRan: []string{"a", "b", "c"}},
		{name: "first fails", failAt: "a", wantRan: []string{"a"}, wantLog: []string{`ADD failed at step "a": boom; rolling back 0 change(s)`}},
		{name: "last fails", failAt: "c", wantRan: []string{"a", "b", "c"}, wantUndo: []string{"undo b", "undo a"},
			wantLog: []string{`ADD failed at step "c"`, "rollback: undo b: done", "rollback: undo a: done"}},
		{name: "a failing undo does not stop the others", failAt: "c", undoFail: "undo b", wantRan: []string{"a", "b", "c"},
			wantUndo: []string{"undo b", "undo a"}, wantLog: []string{"rollback: undo b: failed: undo broke", "rollback: undo a: done"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logged := captureLog(t)
			var add Add
			var ran, undone []string
			step := func(name string) Step {
				return Do(name, func() error {
					ran = append(ran, name)
					if name == tc.failAt {
						return boom
					}
					what := "undo " + name
					add.OnFailure(what, func() error {
						undone = append(undone, what)
						if what == tc.undoFail {
							return errors.New("undo broke")
						}
						return nil
					})
					return nil
				})
			}
			err := add.Run(step("a"), step("b"), step("c"))
			if (tc.failAt != "") != errors.Is(err, boom) {
				t.Errorf("Run: %v", err)
			}
			if !slices.Equal(ran, tc.wantRan) || !slices.Equal(undone, tc.wantUndo) {
				t.Errorf("ran %v, undid %v; want %v and %v", ran, undone, tc.wantRan, tc.wantUndo)
			}
			for _, w := range tc.wantLog {
				if !strings.Contains(logged.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, logged)
				}
			}
			if tc.failAt == "" && logged.Len() != 0 {
				t.Errorf("a successful ADD logged:\n%s", logged)
			}
			if len(add.undo) != 0 {
				t.Errorf("%d undos still armed after Run", len(add.undo))
			}
		})
	}
}

// A panicking step rolls back what the earlier ones made, then the panic goes on to dispatch, which reports it.
func TestAddRunPanic(t *testing.T) {
	captureLog(t)
	var add Add
	undone := false
	defer func() {
		if r := recover(); r != "kaput" {
			t.Errorf("recovered %v, want the step's panic", r)
		}
		if !undone {
			t.Error("the panic skipped the rollback")
		}
	}()
	_ = add.Run(
		Do("make", func() error { add.OnFailure("unmake", func() error { undone = true; return nil }); return nil }),
		Do("explode", func() error { panic("kaput") }),
	)
	t.Error("Run returned after a panic")
}

// The members of a Together step run at once (each waits for all to have started), every member's
// error comes back, and what any member registered is rolled back with what the earlier steps made.
func TestTogether(t *testing.T) {
	logged := captureLog(t)
	var add Add
	started := make(chan struct{}, 3)
	var mu sync.Mutex
	var undone []string
	member := func(name string, fail error) Step {
		return Do(name, func() error {
			started <- struct{}{}
			for len(started) < 3 { // all three are running before any returns
				runtime.Gosched()
			}
			add.OnFailure("undo "+name, func() error { mu.Lock(); undone = append(undone, name); mu.Unlock(); return nil })
			return fail
		})
	}
	first := Do("first", func() error {
		add.OnFailure("undo first", func() error { undone = append(undone, "first"); return nil })
		return nil
	})
	errB, errC := errors.New("b broke"), errors.New("c broke")
	done := make(chan error, 1)
	go func() { done <- add.Run(first, Together(member("a", nil), member("b", errB), member("c", errC))) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Together ran its members one after another")
	}
	if !errors.Is(err, errB) || !errors.Is(err, errC) {
		t.Errorf("Run: %v, want both members' errors", err)
	}
	slices.Sort(undone[:3])
	if !slices.Equal(undone, []string{"a", "b", "c", "first"}) {
		t.Errorf("undid %v, want every member's undo, then first's", undone)
	}
	if !strings.Contains(logged.String(), `ADD failed at step "a+b+c"`) {
		t.Errorf("log does not name the Together step:\n%s", logged)
	}
}

// A member's panic reaches Run's caller after the other members returned and the rollback ran.
func TestTogetherPanic(t *testing.T) {
	captureLog(t)
	var add Add
	var otherDone, undone atomic.Bool
	defer func() {
		if r := recover(); r != "kaput" {
			t.Errorf("recovered %v, want the member's panic", r)
		}
		if !otherDone.Load() || !undone.Load() {
			t.Errorf("the panic came back before the other member finished (%v) or the rollback ran (%v)", otherDone.Load(), undone.Load())
		}
	}()
	_ = add.Run(Together(
		Do("explode", func() error { panic("kaput") }),
		Do("slow", func() error {
			time.Sleep(50 * time.Millisecond)
			add.OnFailure("unslow", func() error { undone.Store(true); return nil })
			otherDone.Store(true)
			return nil
		}),
	))
	t.Error("Run returned after a panic")
}

// AtOnce (bridge's and portmap's DEL, Together) reports every failure, with the code of the first
// coded one.
func TestAtOnceJoinsEveryError(t *testing.T) {
	err := AtOnce(
		func() error { return errors.New("ipam \"host-local\" DEL: disk on fire") },
		func() error { return nil },
		func() error { return conf.TryAgain("ipMasq: the xtables lock is held") },
	)
	got := conf.ForRuntime(err)
	if got.Code != conf.CodeTryAgainLater || !strings.Contains(got.Msg, "disk on fire") || !strings.Contains(got.Msg, "xtables lock") {
		t.Errorf("runtime reads %+v; want code 11 and both failures", got)
	}
	if AtOnce(func() error { return nil }) != nil {
		t.Error("no failure, yet an error")
	}
}
