package iptables

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// natModel is a nat table in memory, as `iptables -t nat -S` lists it: the user chains in creation order
// and every chain's rules. It answers the masquerader's reads and applies its changes with iptables'
// own refusals (a chain that exists, a rule or chain that does not), so the same logic runs against the
// kernel (batch) and in tests (fakeIPT).
type natModel struct {
	chains map[string][]spec
	order  []string // user chains; built-in chains are in chains only
}

func newNatModel() *natModel { return &natModel{chains: map[string][]spec{postrouting: nil}} }

// load reads `iptables -t nat -S` output.
func (m *natModel) load(lines []string) error {
	for _, line := range lines {
		w, err := SplitWords(line)
		if err != nil {
			return err
		}
		switch {
		case len(w) >= 2 && w[0] == "-P":
			if _, ok := m.chains[w[1]]; !ok {
				m.chains[w[1]] = nil
			}
		case len(w) >= 2 && w[0] == "-N":
			if _, ok := m.chains[w[1]]; !ok {
				m.chains[w[1]] = nil
				m.order = append(m.order, w[1])
			}
		case len(w) >= 2 && w[0] == "-A":
			m.chains[w[1]] = append(m.chains[w[1]], spec(w[2:]))
		}
	}
	return nil
}

func (m *natModel) rules(chain string) ([]string, bool) {
	rs, ok := m.chains[chain]
	if !ok {
		return nil, false
	}
	out := []string{"-N " + chain}
	if !slices.Contains(m.order, chain) {
		out = []string{"-P " + chain + " ACCEPT"}
	}
	for _, s := range rs {
		out = append(out, "-A "+chain+" "+render(s))
	}
	return out, true
}

func (m *natModel) chainNames() []string {
	out := []string{}
	for c := range m.chains {
		if !slices.Contains(m.order, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return append(out, m.order...)
}

func (m *natModel) newChain(chain string) error {
	if _, ok := m.chains[chain]; ok {
		return fmt.Errorf("%w: chain %s", errExists, chain)
	}
	m.chains[chain] = nil
	m.order = append(m.order, chain)
	return nil
}

func (m *natModel) append(chain string, s spec) error {
	if _, ok := m.chains[chain]; !ok {
		return fmt.Errorf("%w: chain %s", errNotExist, chain)
	}
	if t := s.target(); t != "" && t != "ACCEPT" && t != "MASQUERADE" && t != "RETURN" {
		if _, ok := m.chains[t]; !ok {
			return fmt.Errorf("%w: target chain %s", errNotExist, t)
		}
	}
	m.chains[chain] = append(m.chains[chain], s.canonical())
	return nil
}

func (m *natModel) delete(chain string, s spec) error {
	i := slices.IndexFunc(m.chains[chain], s.equal)
	if i < 0 {
		return fmt.Errorf("%w: rule in %s", errNotExist, chain)
	}
	m.chains[chain] = slices.Delete(m.chains[chain], i, i+1)
	return nil
}

func (m *natModel) flush(chain string) error {
	if _, ok := m.chains[chain]; !ok {
		return fmt.Errorf("%w: chain %s", errNotExist, chain)
	}
	m.chains[chain] = nil
	return nil
}

func (m *natModel) deleteChain(chain string) error {
	rules, ok := m.chains[chain]
	switch {
	case !ok:
		return fmt.Errorf("%w: chain %s", errNotExist, chain)
	case len(rules) > 0:
		return fmt.Errorf("chain %s is not empty", chain)
	}
	for _, c := range m.chains {
		for _, s := range c {
			if s.target() == chain {
				return fmt.Errorf("chain %s is still referenced", chain)
			}
		}
	}
	delete(m.chains, chain)
	m.order = slices.DeleteFunc(m.order, func(c string) bool { return c == chain })
	return nil
}

// batch is the client the masquerader runs against the kernel. It reads the nat table once (`iptables
// -w -t nat -S`), answers every read from that copy, and turns every change into a line of one
// `iptables-restore --noflush -w` run that commit makes: one process and one kernel commit per IP
// family instead of one per change. With iptables-nft every commit that deletes a rule waits out an RCU
// grace period (some 18 ms), so a DEL that removes a chain and its jump pays that once, not three times.
type batch struct {
	bin     string // "iptables" or "ip6tables"
	model   *natModel
	pending []string
}

func connectBatch(f family) (client, error) {
	bin := f.String()
	if _, err := exec.LookPath(bin); err != nil {
		return nil, err
	}
	return &batch{bin: bin}, nil
}

func (b *batch) load() error {
	if b.model != nil {
		return nil
	}
	out, err := run(exec.Command(b.bin, "-w", "-t", natTable, "-S"), nil)
	if err != nil {
		return err
	}
	m := newNatModel()
	if err := m.load(strings.Split(strings.TrimSpace(out), "\n")); err != nil {
		return err
	}
	b.model = m
	return nil
}

func (b *batch) Rules(table, chain string) ([]string, bool, error) {
	if err := b.load(); err != nil {
		return nil, false, err
	}
	lines, ok := b.model.rules(chain)
	return lines, ok, nil
}

func (b *batch) Chains(table string) ([]string, error) {
	if err := b.load(); err != nil {
		return nil, err
	}
	return b.model.chainNames(), nil
}

// change applies one change to the copy and queues it for commit.
func (b *batch) change(apply func() error, line string) error {
	if err := b.load(); err != nil {
		return err
	}
	if err := apply(); err != nil {
		return err
	}
	b.pending = append(b.pending, line)
	return nil
}

func (b *batch) NewChain(table, chain string) error {
	return b.change(func() error { return b.model.newChain(chain) }, "-N "+chain)
}

func (b *batch) Append(table, chain string, s ...string) error {
	return b.change(func() error { return b.model.append(chain, s) }, "-A "+chain+" "+render(s))
}

func (b *batch) Delete(table, chain string, s ...string) error {
	return b.change(func() error { return b.model.delete(chain, s) }, "-D "+chain+" "+render(s))
}

func (b *batch) Flush(table, chain string) error {
	return b.change(func() error { return b.model.flush(chain) }, "-F "+chain)
}

func (b *batch) DeleteChain(table, chain string) error {
	return b.change(func() error { return b.model.deleteChain(chain) }, "-X "+chain)
}

// Commit applies the queued changes in one iptables-restore run, then forgets the copy of the table:
// the next operation reads the kernel's again.
func (b *batch) Commit() error {
	pending := b.pending
	b.pending, b.model = nil, nil
	if len(pending) == 0 {
		return nil
	}
	script := "*" + natTable + "\n" + strings.Join(pending, "\n") + "\nCOMMIT\n"
	if _, err := run(exec.Command(b.bin+"-restore", "--noflush", "-w"), []byte(script)); err != nil {
		return fmt.Errorf("%s-restore: %w", b.bin, err)
	}
	return nil
}

// Discard drops the queued changes (after a failure half way through an operation).
func (b *batch) Discard() { b.pending, b.model = nil, nil }

func run(cmd *exec.Cmd, stdin []byte) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", err
		}
		return "", fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// committer is a client that queues changes until Commit (batch); the fake in tests applies each at once.
type committer interface {
	Commit() error
	Discard()
}

// commit ends one operation on c: its queued changes go to the kernel in one run, or are dropped when
// the operation failed.
func commit(c client, opErr error) error {
	cm, ok := c.(committer)
	if !ok {
		return opErr
	}
	if opErr != nil {
		cm.Discard()
		return opErr
	}
	return cm.Commit()
}
