package nftnl

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl/internal/nlattr"
)

// Rules lists the rules of t in order, chain by chain, or those of one chain when chain is set. A
// missing table or chain has none.
func (c *Conn) Rules(t Table, chain string) ([]Rule, error) {
	attrs := nlattr.AppendString(nil, unix.NFTA_RULE_TABLE, t.Name)
	what := "the rules of " + t.Name
	if chain != "" {
		attrs = nlattr.AppendString(attrs, unix.NFTA_RULE_CHAIN, chain)
		what = fmt.Sprintf("chain %s %s", t.Name, chain)
	}
	return dumpOf(c, t, unix.NFT_MSG_GETRULE, what, attrs, parseRule)
}

// JumpsTo lists the rules of t's chain that end in a jump to target (Rule.JumpsTo). Only the replies
// that hold target's name are copied and decoded: on a chain of 1,000 rules that jump elsewhere,
// decoding every reply (Rules) doubled the cost of the listing. A missing table or chain has none.
func (c *Conn) JumpsTo(t Table, chain, target string) ([]Rule, error) {
	req := nlattr.AppendString(nil, unix.NFTA_RULE_TABLE, t.Name)
	req = nlattr.AppendString(req, unix.NFTA_RULE_CHAIN, chain)
	what := fmt.Sprintf("chain %s %s", t.Name, chain)
	name := append([]byte(target), 0)
	bodies, err := c.DumpFiltered(unix.NFT_MSG_GETRULE, t.Family, req, func(b []byte) bool { return bytes.Contains(b, name) })
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	var out []Rule
	for _, b := range bodies {
		table, r, err := parseRule(b)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
		if table == t.Name && r.Chain == chain && r.JumpsTo(target) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Chains lists the chains of t. A missing table has none.
func (c *Conn) Chains(t Table) ([]Chain, error) {
	attrs := nlattr.AppendString(nil, unix.NFTA_CHAIN_TABLE, t.Name)
	return dumpOf(c, t, unix.NFT_MSG_GETCHAIN, "the chains of "+t.Name, attrs, parseChain)
}

// Sets lists t's sets and maps: each one's name and timeout (the rest of Set is not read). A missing
// table has none.
func (c *Conn) Sets(t Table) ([]Set, error) {
	attrs := nlattr.AppendString(nil, unix.NFTA_SET_TABLE, t.Name)
	return dumpOf(c, t, unix.NFT_MSG_GETSET, "the sets of "+t.Name, attrs, parseSet)
}

// Elems lists every element of t's set. A missing table or set has none.
func (c *Conn) Elems(t Table, set string) ([]Elem, error) {
	bodies, err := c.Dump(unix.NFT_MSG_GETSETELEM, t.Family, t.elemDump(set))
	if err != nil {
		return nil, fmt.Errorf("list %s %s: %w", t.Name, set, err)
	}
	var out []Elem
	for _, b := range bodies {
		_, es, err := parseElems(b)
		if err != nil {
			return nil, fmt.Errorf("list %s %s: %w", t.Name, set, err)
		}
		out = append(out, es...)
	}
	return out, nil
}

// elemDump is the body of a request to list set's elements.
func (t Table) elemDump(set string) []byte {
	a := nlattr.AppendString(nil, unix.NFTA_SET_ELEM_LIST_TABLE, t.Name)
	return nlattr.AppendString(a, unix.NFTA_SET_ELEM_LIST_SET, set)
}

// dumpOf runs a dump filtered by attrs and parses each reply; parse tells which table the object is
// of, and those of other tables are left out.
func dumpOf[T any](c *Conn, t Table, typ uint16, what string, attrs []byte,
	parse func(body []byte) (table string, v T, err error)) ([]T, error) {
	bodies, err := c.Dump(typ, t.Family, attrs)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	var out []T
	for _, b := range bodies {
		table, v, err := parse(b)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
		if table == t.Name {
			out = append(out, v)
		}
	}
	return out, nil
}

// decoder reads the attributes of a reply body (after the nfnetlink header).
func decoder(b []byte) *nlattr.Decoder { return nlattr.NewDecoder(body(b)) }

// parseRule reads a NEWRULE message.
func parseRule(b []byte) (table string, r Rule, err error) {
	d := decoder(b)
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_RULE_TABLE:
			table = d.String()
		case unix.NFTA_RULE_CHAIN:
			r.Chain = d.String()
		case unix.NFTA_RULE_HANDLE:
			r.Handle = d.Uint64()
		case unix.NFTA_RULE_USERDATA:
			r.Comment = udataString(d.Bytes(), udataComment)
		case unix.NFTA_RULE_EXPRESSIONS:
			// Kept as they are, in b (a reply's own copy), until Expressions decodes them.
			r.exprs = d.Bytes()
		}
	}
	return table, r, d.Err()
}

// parseChain reads a NEWCHAIN message.
func parseChain(b []byte) (table string, ch Chain, err error) {
	d := decoder(b)
	var hook Hook
	hooked := false
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_CHAIN_TABLE:
			table = d.String()
		case unix.NFTA_CHAIN_NAME:
			ch.Name = d.String()
		case unix.NFTA_CHAIN_TYPE:
			hook.Type = d.String()
		case unix.NFTA_CHAIN_HOOK:
			hooked = true
			nd := d.Nested()
			for nd.Next() {
				switch nd.Type() {
				case unix.NFTA_HOOK_HOOKNUM:
					hook.Num = nd.Uint32()
				case unix.NFTA_HOOK_PRIORITY:
					hook.Priority = int32(nd.Uint32())
				}
			}
			d.Fail(nd.Err())
		}
	}
	if hooked {
		ch.Hook = &hook
	}
	return table, ch, d.Err()
}

// parseSet reads the table, the name and the timeout of a NEWSET message.
func parseSet(b []byte) (table string, s Set, err error) {
	d := decoder(b)
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_SET_TABLE:
			table = d.String()
		case unix.NFTA_SET_NAME:
			s.Name = d.String()
		case unix.NFTA_SET_TIMEOUT:
			s.Timeout = time.Duration(d.Uint64()) * time.Millisecond
		}
	}
	return table, s, d.Err()
}

// parseElems reads a NEWSETELEM message: the set's name and its elements.
func parseElems(b []byte) (set string, out []Elem, err error) {
	if len(b) < nfgenmsgLen {
		return "", nil, fmt.Errorf("short nf_tables element message")
	}
	d := decoder(b)
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_SET_ELEM_LIST_SET:
			set = d.String()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			list := d.Nested()
			for list.Next() {
				e, err := parseElem(list.Nested())
				list.Fail(err)
				out = append(out, e)
			}
			d.Fail(list.Err())
		}
	}
	if err := d.Err(); err != nil {
		return "", nil, fmt.Errorf("parse nf_tables elements: %w", err)
	}
	return set, out, nil
}

func parseElem(d *nlattr.Decoder) (Elem, error) {
	var e Elem
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			e.Key = dataValue(d.Nested())
		case unix.NFTA_SET_ELEM_DATA:
			e.Data = dataValue(d.Nested())
		case unix.NFTA_SET_ELEM_USERDATA:
			e.Comment = udataString(d.Bytes(), udataSetElemComment)
		case unix.NFTA_SET_ELEM_EXPIRATION:
			e.Expiration, e.Expires = time.Duration(d.Uint64())*time.Millisecond, true
		}
	}
	return e, d.Err()
}

// dataValue unwraps NFTA_DATA_VALUE (nil when malformed or missing).
func dataValue(d *nlattr.Decoder) []byte {
	for d.Next() {
		if d.Type() == unix.NFTA_DATA_VALUE {
			return bytes.Clone(d.Bytes())
		}
	}
	return nil
}

// parseGeneration reads a NEWGEN message.
func parseGeneration(b []byte) (uint32, error) {
	d := decoder(b)
	for d.Next() {
		if d.Type() == unix.NFTA_GEN_ID {
			v := d.Uint32()
			return v, d.Err()
		}
	}
	if err := d.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("nf_tables generation reply without NFTA_GEN_ID")
}

// HasChain tells whether t has a chain named chain: one lookup (not a dump), whatever the size of the
// table. A missing table has none.
func (c *Conn) HasChain(t Table, chain string) (bool, error) {
	req := t.chainAttrs(chain)
	seq := c.reserve(1)
	if err := c.send(appendMsg(nil, nftType(unix.NFT_MSG_GETCHAIN), unix.NLM_F_REQUEST, seq, t.Family, 0, req)); err != nil {
		return false, fmt.Errorf("look up chain %s %s: %w", t.Name, chain, err)
	}
	for {
		replies, err := c.receive()
		if err != nil {
			return false, fmt.Errorf("look up chain %s %s: %w", t.Name, chain, err)
		}
		for _, r := range replies {
			switch {
			case r.Header.Seq != seq:
			case r.Header.Type == nftType(unix.NFT_MSG_NEWCHAIN):
				return true, nil
			case r.Header.Type == unix.NLMSG_ERROR:
				err := errnoOf(r)
				if err == nil || errors.Is(err, unix.ENOENT) {
					return false, nil
				}
				return false, fmt.Errorf("look up chain %s %s: %w", t.Name, chain, err)
			}
		}
	}
}

// RulesByHandle looks up rules of t's chain by handle, one request each (not a dump), all sent at once:
// the cost depends on len(handles), not on the size of the chain. out[i] is the rule with handles[i],
// nil when there is none (or no such chain or table).
func (c *Conn) RulesByHandle(t Table, chain string, handles []uint64) (out []*Rule, err error) {
	if len(handles) == 0 {
		return nil, nil
	}
	reqs := make([][]byte, len(handles))
	for i, h := range handles {
		req := nlattr.AppendString(nil, unix.NFTA_RULE_TABLE, t.Name)
		req = nlattr.AppendString(req, unix.NFTA_RULE_CHAIN, chain)
		reqs[i] = nlattr.AppendUint64(req, unix.NFTA_RULE_HANDLE, h)
	}
	what := fmt.Sprintf("look up rules of chain %s %s", t.Name, chain)
	return lookups(c, unix.NFT_MSG_GETRULE, t.Family, reqs, func(r syscall.NetlinkMessage) (*Rule, error) { return ruleReply(t, r) },
		func(i int) string {
			if i < 0 {
				return what
			}
			return fmt.Sprintf("%s: rule %d", what, handles[i])
		})
}

// ruleReply reads the answer to one GETRULE: the rule, or nil when there is none.
func ruleReply(t Table, r syscall.NetlinkMessage) (*Rule, error) {
	switch r.Header.Type {
	case unix.NLMSG_ERROR:
		if err := errnoOf(r); err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, err
		}
	case nftType(unix.NFT_MSG_NEWRULE):
		// The reply's Data lies in the receive buffer: the rule keeps a copy.
		table, rule, err := parseRule(bytes.Clone(r.Data))
		if err != nil || table != t.Name {
			return nil, err
		}
		return &rule, nil
	}
	return nil, nil
}
