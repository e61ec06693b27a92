package iptables

import (
	"fmt"
	"strings"
)

// fakeIPT is an in-memory nat table (the masquerader's own natModel) that applies each change at once
// and logs one line per iptables run the change would be.
type fakeIPT struct {
	*natModel
	family string
	calls  *[]string
}

func newFake(family string, calls *[]string) *fakeIPT {
	return &fakeIPT{natModel: newNatModel(), family: family, calls: calls}
}

func (f *fakeIPT) log(format string, args ...any) {
	*f.calls = append(*f.calls, f.family+" "+fmt.Sprintf(format, args...))
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
	lines, ok := f.rules(chain)
	return lines, ok, nil
}

func (f *fakeIPT) Chains(table string) ([]string, error) {
	f.log("-t %s -S", table)
	return f.chainNames(), nil
}

func (f *fakeIPT) NewChain(table, chain string) error {
	f.log("-t %s -N %s", table, chain)
	return f.newChain(chain)
}

func (f *fakeIPT) Append(table, chain string, s ...string) error {
	f.log("-t %s -A %s %s", table, chain, render(s))
	return f.append(chain, s)
}

func (f *fakeIPT) Delete(table, chain string, s ...string) error {
	f.log("-t %s -D %s %s", table, chain, render(s))
	return f.delete(chain, s)
}

func (f *fakeIPT) Flush(table, chain string) error {
	f.log("-t %s -F %s", table, chain)
	return f.flush(chain)
}

func (f *fakeIPT) DeleteChain(table, chain string) error {
	f.log("-t %s -X %s", table, chain)
	return f.deleteChain(chain)
}
