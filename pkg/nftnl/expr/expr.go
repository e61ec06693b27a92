// Package expr is netloom's nf_tables rule expression codec: value types for the expressions netloom's
// rules are made of (and the few others it reads: counters, immediates of the reference's rules), their
// netlink encoding, the decoder of a rule's expression list as the kernel dumps it, and Describe, their
// text for comparing rules. Any other expression (rules of nft, kube-proxy, the reference) reads back
// as an Unknown that keeps its name and raw attributes, so listing a chain never fails on it and it
// never compares equal to one netloom builds.
//
// The types and names follow google/nftables' expr package, whose encoding of the same values is byte
// for byte the same (a test holds them to it); netloom does not link that package because its decoder
// brings every expression type and the xtables compat matches into each plugin binary.
package expr

import (
	"bytes"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl/internal/nlattr"
)

// Any is one expression of a rule.
type Any interface {
	// kind is the kernel's name of the expression ("cmp", "immediate").
	kind() string
	// appendData appends the expression's attributes (the body of NFTA_EXPR_DATA).
	appendData(b []byte) []byte
}

// Marshal encodes e as the body of one NFTA_LIST_ELEM of a rule: NFTA_EXPR_NAME and NFTA_EXPR_DATA.
func Marshal(e Any) []byte {
	b := nlattr.AppendString(nil, unix.NFTA_EXPR_NAME, e.kind())
	return nlattr.AppendNested(b, unix.NFTA_EXPR_DATA, e.appendData(nil))
}

// AppendList appends exprs as the body of a rule's NFTA_RULE_EXPRESSIONS.
func AppendList(b []byte, exprs []Any) []byte {
	for _, e := range exprs {
		b = nlattr.AppendNested(b, unix.NFTA_LIST_ELEM, Marshal(e))
	}
	return b
}

// ParseList decodes the body of a rule's NFTA_RULE_EXPRESSIONS. Expressions this package does not
// model, by name or by form (a payload write, a shift), come back as Unknown; only malformed
// attributes are an error.
func ParseList(list []byte) ([]Any, error) {
	var out []Any
	d := nlattr.NewDecoder(list)
	for d.Next() {
		if d.Type() != unix.NFTA_LIST_ELEM {
			continue
		}
		e, err := parseElem(d.Bytes())
		if err != nil {
			return nil, fmt.Errorf("expression %d: %w", len(out)+1, err)
		}
		out = append(out, e)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("expressions: %w", err)
	}
	return out, nil
}

// parseElem decodes one NFTA_LIST_ELEM.
func parseElem(b []byte) (Any, error) {
	var name string
	var data []byte
	named := false
	d := nlattr.NewDecoder(b)
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_EXPR_NAME:
			name, named = d.String(), true
		case unix.NFTA_EXPR_DATA:
			data = d.Bytes()
		}
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	if !named {
		return nil, fmt.Errorf("no NFTA_EXPR_NAME")
	}
	parse := parsers(name)
	if parse == nil {
		return &Unknown{Name: name, Data: bytes.Clone(data)}, nil
	}
	e, ok, err := parse(nlattr.NewDecoder(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !ok {
		return &Unknown{Name: name, Data: bytes.Clone(data)}, nil
	}
	return e, nil
}

// parser decodes an expression's attributes; ok is false for a form the type does not model.
type parser func(d *nlattr.Decoder) (e Any, ok bool, err error)

func parsers(name string) parser {
	switch name {
	case "meta":
		return parseMeta
	case "cmp":
		return parseCmp
	case "payload":
		return parsePayload
	case "bitwise":
		return parseBitwise
	case "immediate":
		return parseImmediate
	case "masq":
		return parseMasq
	case "nat":
		return parseNAT
	case "lookup":
		return parseLookup
	case "ct":
		return parseCt
	case "fib":
		return parseFib
	case "counter":
		return parseCounter
	case "match":
		return parseMatch
	case "target":
		return parseTarget
	}
	return nil
}

// Unknown is an expression of a kind or form this package does not model, as read back: its name and
// its raw NFTA_EXPR_DATA. Written back it is the same bytes.
type Unknown struct {
	Name string
	Data []byte
}

func (e *Unknown) kind() string               { return e.Name }
func (e *Unknown) appendData(b []byte) []byte { return append(b, e.Data...) }

// value reads an NFTA_DATA_VALUE nested in the current attribute of d.
func value(d *nlattr.Decoder) []byte {
	var v []byte
	nd := d.Nested()
	for nd.Next() {
		if nd.Type() == unix.NFTA_DATA_VALUE {
			v = bytes.Clone(nd.Bytes())
		}
	}
	d.Fail(nd.Err())
	return v
}

// appendValue appends v as an attribute of type typ holding an NFTA_DATA_VALUE.
func appendValue(b []byte, typ uint16, v []byte) []byte {
	return nlattr.AppendNested(b, typ, nlattr.Append(nil, unix.NFTA_DATA_VALUE, v))
}
