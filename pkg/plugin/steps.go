package plugin

import (
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"

	"github.com/netloom/netloom/pkg/fault"
)

// Step is one named part of a plugin's ADD. Its name is also its fault point: with
// NETLOOM_FAULT_POINT=<plugin>:<name> the process is killed just before the step runs (pkg/fault).
type Step struct {
	name string
	do   func() error
	// together are the steps of a Together step, run at once; do is nil then.
	together []Step
}

// Do names one step of an ADD.
func Do(name string, do func() error) Step { return Step{name: name, do: do} }

// Together runs steps at once, as one step of an ADD: for independent steps that each wait mostly on
// another process or on the kernel (an IPAM plugin, iptables-restore, a namespace's configuration). Every
// member's fault point comes before any of them runs, in order; they may register undos (OnFailure) from
// their goroutines. The step fails with every member's error, joined, after all of them have returned;
// a member's panic is raised again on the caller's goroutine, after the others returned, so Run rolls
// back as after any panic.
func Together(steps ...Step) Step {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.name
	}
	return Step{name: strings.Join(names, "+"), together: steps}
}

// run runs the step: for a Together step its members' fault points, then the members at once.
func (s Step) run() error {
	if s.together == nil {
		fault.Point(s.name)
		return s.do()
	}
	fs := make([]func() error, len(s.together))
	for i, m := range s.together {
		fault.Point(m.name)
		fs[i] = m.do
	}
	return AtOnce(fs...)
}

// AtOnce runs fs concurrently, waits for all of them and returns every error they had, joined: the
// runtime reads all of them, with the code of the first that has one (conf.ForRuntime). A panic in
// one is raised again on the caller's goroutine once the others have returned, so the caller's
// recovery (Run's rollback, dispatch's recover) sees it. For steps that each wait mostly on another process
// or on the kernel; in a plugin process every goroutine's thread is in the process's namespace.
func AtOnce(fs ...func() error) error {
	errs := make([]error, len(fs))
	panics := make([]any, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			errs[i] = f()
		})
	}
	wg.Wait()
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
	return errors.Join(errs...)
}

// Add runs an ADD as named steps and undoes what they made when one fails. A step that makes something
// (a lease, a link, a rule) registers how to remove it with OnFailure right after making it; Run calls
// those undos in reverse order, logging what each did, as soon as a step fails, and forgets them when
// every step succeeded. The zero value is ready to use; an Add runs once.
//
// What an ADD shares with other attachments (a bridge, a tunnel, the peer routes) is not undone: the
// next ADD or GC owns it. Only what belongs to this attachment registers an undo.
type Add struct {
	mu   sync.Mutex // guards undo: the members of a Together step register from their goroutines
	undo []undo
}

type undo struct {
	what string
	do   func() error
}

// OnFailure registers how to remove something a step just made; what says what it removes ("release
// IP", "remove veth") in the rollback's log lines. It may be called from any goroutine.
func (a *Add) OnFailure(what string, do func() error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.undo = append(a.undo, undo{what: what, do: do})
}

// Run runs steps in order, each after its fault point (a Together step after each member's), then the
// fault point "done". The first failure rolls back every registered undo and is returned as it is; a
// panic in a step rolls back too before it goes on. On success the undos are dropped.
func (a *Add) Run(steps ...Step) (err error) {
	failed := "" // the step that failed or panicked; "" once every step succeeded
	defer func() {
		if failed == "" {
			a.undo = nil
			return
		}
		cause := err
		if r := recover(); r != nil {
			cause = fmt.Errorf("panic: %v", r)
			defer panic(r) // after the rollback, for dispatch to report
		}
		a.rollback(failed, cause)
	}()
	for _, s := range steps {
		failed = s.name
		if err := s.run(); err != nil {
			return err
		}
	}
	fault.Point("done")
	failed = ""
	return nil
}

// rollback runs the undos in reverse order; a failed undo does not stop the others.
func (a *Add) rollback(step string, cause error) {
	log.Printf("ADD failed at step %q: %v; rolling back %d change(s)", step, cause, len(a.undo))
	for i := len(a.undo) - 1; i >= 0; i-- {
		u := a.undo[i]
		if err := u.do(); err != nil {
			log.Printf("rollback: %s: failed: %v", u.what, err)
		} else {
			log.Printf("rollback: %s: done", u.what)
		}
	}
	a.undo = nil
}
