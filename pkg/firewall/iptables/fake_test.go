package iptables

import (
	"fmt"
	"slices"
	"strings"
)

// fakeIPT is an in-memory nat table that answers like iptables -S and logs one line per iptables run.
type fakeIPT struct {
	family string
	chains map[string][]spec
	order  []string // user chains in creation order; POSTROUTING is built in
	calls  *[]string
}

func newFake(family string, calls *[]string) *fakeIPT {
	return &fakeIPT{family: family, chains: map[string][]spec{postrouting: nil}, calls: calls}
}

func (f *fakeIPT) log(format string, args ...any) {
	*f.calls = append(*f.calls, f.family+" "+fmt.Sprintf(format, args...))
}

func (f *fakeIPT) lines(chain string) []string {
	var out []string
	if chain == postrouting {
		out = append(out, "-P POSTROUTING ACCEPT")
	} else {
		out = append(out, "-N "+chain)
	}
	for _, s := range f.chains[chain] {
		out = append(out, "-A "+chain+" "+render(s))
	}
	return out
}

// dump is the whole table, as `iptables -t nat -S` prints it.
func (f *fakeIPT) dump() string {
	out := []string{"-P POSTROUTING ACCEPT"}
	for _, c := range f.order {
		out = append(out, "-N "+c)
	}
	for _, c := range append([]string{postrouting}, f.order...) {
		for _, s := range f.chains[c] {
			out = append(out, "-A "+c+" "+render(s))
		}
	}
	return strings.Join(out, "\n") + "\n"
}

func (f *fakeIPT) Rules(table, chain string) ([]string, bool, error) {
	f.log("-t %s -S %s", table, chain)
	if _, ok := f.chains[chain]; !ok {
		return nil, false, nil
	}
	return f.lines(chain), true, nil
}

func (f *fakeIPT) Chains(table string) ([]string, error) {
	f.log("-t %s -S", table)
	return append([]string{postrouting}, f.order...), nil
}

func (f *fakeIPT) NewChain(table, chain string) error {
	f.log("-t %s -N %s", table, chain)
	if _, ok := f.chains[chain]; ok {
		return fmt.Errorf("%w: chain %s", errExists, chain)
	}
	f.chains[chain] = nil
	f.order = append(f.order, chain)
	return nil
}

func (f *fakeIPT) Append(table, chain string, s ...string) error {
	f.log("-t %s -A %s %s", table, chain, render(s))
	if _, ok := f.chains[chain]; !ok {
		return fmt.Errorf("no chain %s", chain)
	}
	if t := spec(s).target(); t != "ACCEPT" && t != "MASQUERADE" {
		if _, ok := f.chains[t]; !ok {
			return fmt.Errorf("no target %s", t)
		}
	}
	f.chains[chain] = append(f.chains[chain], spec(s).canonical())
	return nil
}

func (f *fakeIPT) Delete(table, chain string, s ...string) error {
	f.log("-t %s -D %s %s", table, chain, render(s))
	i := slices.IndexFunc(f.chains[chain], spec(s).equal)
	if i < 0 {
		return fmt.Errorf("%w: rule", errNotExist)
	}
	f.chains[chain] = slices.Delete(f.chains[chain], i, i+1)
	return nil
}

func (f *fakeIPT) Flush(table, chain string) error {
	f.log("-t %s -N %s", table, chain) // go-iptables' ClearChain tries to create it first
	f.log("-t %s -F %s", table, chain)
	if _, ok := f.chains[chain]; !ok {
		return fmt.Errorf("%w: chain %s", errNotExist, chain)
	}
	f.chains[chain] = nil
	return nil
}

func (f *fakeIPT) DeleteChain(table, chain string) error {
	f.log("-t %s -X %s", table, chain)
	rules, ok := f.chains[chain]
	switch {
	case !ok:
		return fmt.Errorf("%w: chain %s", errNotExist, chain)
	case len(rules) > 0:
		return fmt.Errorf("chain %s not empty", chain)
	}
	for _, c := range f.chains {
		for _, s := range c {
			if s.target() == chain {
				return fmt.Errorf("chain %s still referenced", chain)
			}
		}
	}
	delete(f.chains, chain)
	f.order = slices.DeleteFunc(f.order, func(c string) bool { return c == chain })
	return nil
}
