package plugin

// Verbs is a plugin's CNI commands written against its parsed configuration C. Parse runs first for
// every command, so a bad configuration fails each the same way, and no command repeats the parsing.
// A command left nil makes dispatch answer success without doing anything (after its version
// checks); every netloom plugin sets all five, some outside Verbs (see their main.go).
type Verbs[C any] struct {
	Parse                       func(*Args) (C, error)
	Add, Del, Check, GC, Status func(C, *Args) error
}

// Funcs returns the commands for Main.
func (v Verbs[C]) Funcs() Funcs {
	return Funcs{Add: v.wrap(v.Add), Del: v.wrap(v.Del), Check: v.wrap(v.Check), GC: v.wrap(v.GC), Status: v.wrap(v.Status)}
}

func (v Verbs[C]) wrap(cmd func(C, *Args) error) func(*Args) error {
	if cmd == nil {
		return nil
	}
	return func(args *Args) error {
		c, err := v.Parse(args)
		if err != nil {
			return err
		}
		return cmd(c, args)
	}
}
