package hostlink

// Mode pairs a "mode" value of a plugin's config with the kernel's constant for it.
type Mode[M comparable] struct {
	Name  string
	Value M
}

// Modes is a plugin's table of link modes (macvlan's, ipvlan's) with the mode an empty "mode" means.
type Modes[M comparable] struct {
	Default M
	List    []Mode[M]
}

// Parse maps a "mode" value to the kernel's mode; "" is the default.
func (ms Modes[M]) Parse(s string) (M, bool) {
	if s == "" {
		return ms.Default, true
	}
	for _, m := range ms.List {
		if m.Name == s {
			return m.Value, true
		}
	}
	var zero M
	return zero, false
}

// Name is the "mode" value of a kernel mode, for messages; "unknown" for one the table lacks.
func (ms Modes[M]) Name(v M) string {
	for _, m := range ms.List {
		if m.Value == v {
			return m.Name
		}
	}
	return "unknown"
}
