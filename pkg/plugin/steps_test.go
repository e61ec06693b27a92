package plugin

import (
	"bytes"
	"errors"
	"log"
	"slices"
	"strings"
	"testing"
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

// A panicking step rolls back what the earlier ones made, then the panic goes on to Main's guard.
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
