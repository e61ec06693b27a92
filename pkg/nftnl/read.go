package nftnl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Rules lists the rules of t in order, chain by chain, or those of one chain when chain is set. A
// missing table or chain has none.
func (c *Conn) Rules(t Table, chain string) ([]Rule, error) {
	attrs := []netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: cstr(t.Name)}}
	what := "the rules of " + t.Name
	if chain != "" {
		attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)})
		what = fmt.Sprintf("chain %s %s", t.Name, chain)
	}
	return dumpOf(c, t, unix.NFT_MSG_GETRULE, what, attrs, parseRule)
}

// JumpsTo lists the rules of t's chain that end in a jump to target (Rule.JumpsTo). Only the replies
// that hold target's name are decoded: on a chain of 1,000 rules that jump elsewhere, decoding every
// reply (Rules) doubled the cost of the listing. A missing table or chain has none.
func (c *Conn) JumpsTo(t Table, chain, target string) ([]Rule, error) {
	req, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
	})
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("chain %s %s", t.Name, chain)
	bodies, err := c.Dump(unix.NFT_MSG_GETRULE, t.Family, req)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	name := cstr(target)
	var out []Rule
	for _, b := range bodies {
		if !bytes.Contains(b, name) {
			continue
		}
		table, r, err := parseRule(t.Family, b)
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
	attrs := []netlink.Attribute{{Type: unix.NFTA_CHAIN_TABLE, Data: cstr(t.Name)}}
	return dumpOf(c, t, unix.NFT_MSG_GETCHAIN, "the chains of "+t.Name, attrs, parseChain)
}

// Sets lists the names of t's sets and maps. A missing table has none.
func (c *Conn) Sets(t Table) ([]string, error) {
	attrs := []netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: cstr(t.Name)}}
	return dumpOf(c, t, unix.NFT_MSG_GETSET, "the sets of "+t.Name, attrs, parseSetName)
}

// Elems lists every element of t's set. A missing table or set has none.
func (c *Conn) Elems(t Table, set string) ([]Elem, error) {
	attrs, err := t.elemDump(set)
	if err != nil {
		return nil, err
	}
	bodies, err := c.Dump(unix.NFT_MSG_GETSETELEM, t.Family, attrs)
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
func (t Table) elemDump(set string) ([]byte, error) {
	return netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: cstr(set)},
	})
}

// dumpOf runs a dump filtered by attrs and parses each reply; parse tells which table the object is
// of, and those of other tables are left out.
func dumpOf[T any](c *Conn, t Table, typ uint16, what string, attrs []netlink.Attribute,
	parse func(fam byte, body []byte) (table string, v T, err error)) ([]T, error) {
	req, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return nil, err
	}
	bodies, err := c.Dump(typ, t.Family, req)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	var out []T
	for _, b := range bodies {
		table, v, err := parse(t.Family, b)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
		if table == t.Name {
			out = append(out, v)
		}
	}
	return out, nil
}

// decoder reads the attributes of a reply body (after the nfnetlink header); numbers in nf_tables
// attributes are big-endian.
func decoder(b []byte) (*netlink.AttributeDecoder, error) {
	ad, err := netlink.NewAttributeDecoder(body(b))
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	return ad, nil
}

// parseRule reads a NEWRULE message.
func parseRule(fam byte, b []byte) (table string, r Rule, err error) {
	ad, err := decoder(b)
	if err != nil {
		return "", r, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_TABLE:
			table = ad.String()
		case unix.NFTA_RULE_CHAIN:
			r.Chain = ad.String()
		case unix.NFTA_RULE_HANDLE:
			r.Handle = ad.Uint64()
		case unix.NFTA_RULE_USERDATA:
			r.Comment, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
		case unix.NFTA_RULE_EXPRESSIONS:
			// Kept as they are, in b (a reply's own copy), until Expressions decodes them.
			ad.Do(func(list []byte) error {
				r.family, r.exprs = fam, list
				return nil
			})
		}
	}
	return table, r, ad.Err()
}

// parseExprs reads the expression list of a rule with google/nftables' own decoder, which covers every
// expression type it knows. It decodes a list only inside a dynset expression (NFTA_DYNSET_EXPRESSIONS
// holds a list of the same form), so the list is handed to it as one; its rule decoder is bound to its
// Conn.
func parseExprs(fam byte, list []byte) ([]expr.Any, error) {
	wrapped, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NLA_F_NESTED | expr.NFTA_DYNSET_EXPRESSIONS, Data: list}})
	if err != nil {
		return nil, err
	}
	var d expr.Dynset
	if err := expr.Unmarshal(fam, wrapped, &d); err != nil {
		return nil, fmt.Errorf("expressions: %w", err)
	}
	return d.Exprs, nil
}

// parseChain reads a NEWCHAIN message.
func parseChain(_ byte, b []byte) (table string, ch Chain, err error) {
	ad, err := decoder(b)
	if err != nil {
		return "", ch, err
	}
	var hook Hook
	hooked := false
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_CHAIN_TABLE:
			table = ad.String()
		case unix.NFTA_CHAIN_NAME:
			ch.Name = ad.String()
		case unix.NFTA_CHAIN_TYPE:
			hook.Type = ad.String()
		case unix.NFTA_CHAIN_HOOK:
			hooked = true
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					switch nad.Type() {
					case unix.NFTA_HOOK_HOOKNUM:
						hook.Num = nad.Uint32()
					case unix.NFTA_HOOK_PRIORITY:
						hook.Priority = int32(nad.Uint32())
					}
				}
				return nil
			})
		}
	}
	if hooked {
		ch.Hook = &hook
	}
	return table, ch, ad.Err()
}

// parseSetName reads the table and name of a NEWSET message.
func parseSetName(_ byte, b []byte) (table, name string, err error) {
	ad, err := decoder(b)
	if err != nil {
		return "", "", err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_TABLE:
			table = ad.String()
		case unix.NFTA_SET_NAME:
			name = ad.String()
		}
	}
	return table, name, ad.Err()
}

// parseElems reads a NEWSETELEM message: the set's name and its elements.
func parseElems(b []byte) (set string, out []Elem, err error) {
	if len(b) < nfgenmsgLen {
		return "", nil, fmt.Errorf("short nf_tables element message")
	}
	ad, err := decoder(b)
	if err != nil {
		return "", nil, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_LIST_SET:
			set = ad.String()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					var e Elem
					list.Nested(func(nad *netlink.AttributeDecoder) error {
						e = parseElem(nad)
						return nil
					})
					out = append(out, e)
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return "", nil, fmt.Errorf("parse nf_tables elements: %w", err)
	}
	return set, out, nil
}

func parseElem(ad *netlink.AttributeDecoder) Elem {
	var e Elem
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			e.Key = dataValue(ad.Bytes())
		case unix.NFTA_SET_ELEM_DATA:
			e.Data = dataValue(ad.Bytes())
		case unix.NFTA_SET_ELEM_USERDATA:
			e.Comment, _ = userdata.GetString(ad.Bytes(), userdata.NFTNL_UDATA_SET_ELEM_COMMENT)
		}
	}
	return e
}

// dataValue unwraps NFTA_DATA_VALUE.
func dataValue(b []byte) []byte {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_DATA_VALUE {
			return append([]byte(nil), ad.Bytes()...)
		}
	}
	return nil
}

// parseGeneration reads a NEWGEN message.
func parseGeneration(b []byte) (uint32, error) {
	ad, err := decoder(b)
	if err != nil {
		return 0, err
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_GEN_ID {
			return ad.Uint32(), nil
		}
	}
	if err := ad.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("nf_tables generation reply without NFTA_GEN_ID")
}

// HasChain tells whether t has a chain named chain: one lookup (not a dump), whatever the size of the
// table. A missing table has none.
func (c *Conn) HasChain(t Table, chain string) (bool, error) {
	req, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_CHAIN_NAME, Data: cstr(chain)},
	})
	if err != nil {
		return false, err
	}
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
	first := c.reserve(len(handles))
	var b []byte
	for i, h := range handles {
		req, err := netlink.MarshalAttributes([]netlink.Attribute{
			{Type: unix.NFTA_RULE_TABLE, Data: cstr(t.Name)},
			{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
			{Type: unix.NFTA_RULE_HANDLE, Data: be64(h)},
		})
		if err != nil {
			return nil, err
		}
		b = appendMsg(b, nftType(unix.NFT_MSG_GETRULE), unix.NLM_F_REQUEST, first+uint32(i), t.Family, 0, req)
	}
	what := fmt.Sprintf("look up rules of chain %s %s", t.Name, chain)
	if err := c.send(b); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out = make([]*Rule, len(handles))
	answered := make([]bool, len(handles))
	for left := len(handles); left > 0; {
		replies, err := c.receive()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		for _, r := range replies {
			i := int(r.Header.Seq - first)
			if i < 0 || i >= len(handles) || answered[i] {
				continue
			}
			answered[i] = true
			left--
			if out[i], err = ruleReply(t, r); err != nil {
				return nil, fmt.Errorf("%s: rule %d: %w", what, handles[i], err)
			}
		}
	}
	return out, nil
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
		table, rule, err := parseRule(t.Family, bytes.Clone(r.Data))
		if err != nil || table != t.Name {
			return nil, err
		}
		return &rule, nil
	}
	return nil, nil
}
