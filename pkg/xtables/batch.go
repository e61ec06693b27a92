package xtables

import (
	"strconv"
	"strings"
)

// Batch is the input of one `iptables-restore --noflush` run on one table: every change one operation
// makes in one IP family, which the kernel takes all at once or not at all.
type Batch struct{ lines []string }

func (b *Batch) add(op, chain string, r Rule) {
	line := op + " " + chain
	if len(r) > 0 {
		line += " " + r.String()
	}
	b.lines = append(b.lines, line)
}

// NewChain creates chain; the restore fails if it exists (rather than flushing it, as ":chain" would).
func (b *Batch) NewChain(chain string) { b.add("-N", chain, nil) }

// Flush empties chain.
func (b *Batch) Flush(chain string) { b.add("-F", chain, nil) }

// DeleteChain deletes chain, which must be empty and no rule's target.
func (b *Batch) DeleteChain(chain string) { b.add("-X", chain, nil) }

// Append adds r at the end of chain.
func (b *Batch) Append(chain string, r Rule) { b.add("-A", chain, r) }

// Insert adds r to chain at pos (1 is the top).
func (b *Batch) Insert(chain string, pos int, r Rule) {
	b.add("-I", chain, append(Rule{strconv.Itoa(pos)}, r...))
}

// Delete removes the first rule of chain that equals r.
func (b *Batch) Delete(chain string, r Rule) { b.add("-D", chain, r) }

// SetChain makes chain hold exactly rules, t being the table as read: it is created when missing, left
// alone when it holds them already, and otherwise flushed and written again in the same commit, so
// nobody sees it half-written.
func (b *Batch) SetChain(t Table, chain string, rules []Rule) {
	switch {
	case !t.Chains[chain]:
		b.NewChain(chain)
	case RulesEqual(t.Rules[chain], rules):
		return
	default:
		b.Flush(chain)
	}
	for _, r := range rules {
		b.Append(chain, r)
	}
}

// RemoveChain deletes the rules of from that jump to chain, then chain itself when t has it.
func (b *Batch) RemoveChain(t Table, from, chain string) {
	for _, j := range t.JumpsTo(from, chain) {
		b.Delete(from, j)
	}
	if t.Chains[chain] {
		b.Flush(chain)
		b.DeleteChain(chain)
	}
}

// Empty tells whether the batch changes nothing.
func (b *Batch) Empty() bool { return len(b.lines) == 0 }

// Lines returns the batch's commands, one iptables-restore line each.
func (b *Batch) Lines() []string { return b.lines }

// Script is the iptables-restore input that applies the batch to table.
func (b *Batch) Script(table string) string {
	return "*" + table + "\n" + strings.Join(b.lines, "\n") + "\nCOMMIT\n"
}
