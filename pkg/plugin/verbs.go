package plugin

import "github.com/containernetworking/cni/pkg/skel"

// Verbs is a plugin's CNI commands written against its parsed configuration C. Parse runs first for
// every command, so a bad configuration fails each the same way, and no command repeats the parsing.
// A command left nil makes the skeleton answer success without doing anything (after its version
// checks); every netloom plugin sets all five, some outside Verbs (see their main.go).
type Verbs[C any] struct {
	Parse                       func(*skel.CmdArgs) (C, error)
	Add, Del, Check, GC, Status func(C, *skel.CmdArgs) error
}

// Funcs returns the commands for Main.
func (v Verbs[C]) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: v.wrap(v.Add), Del: v.wrap(v.Del), Check: v.wrap(v.Check), GC: v.wrap(v.GC), Status: v.wrap(v.Status)}
}

func (v Verbs[C]) wrap(cmd func(C, *skel.CmdArgs) error) func(*skel.CmdArgs) error {
	if cmd == nil {
		return nil
	}
	return func(args *skel.CmdArgs) error {
		c, err := v.Parse(args)
		if err != nil {
			return err
		}
		return cmd(c, args)
	}
}
