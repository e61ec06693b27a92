package nftables

import (
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl"
)

// This file turns the layout's objects into pkg/nftnl messages and reads the maps back. nftnl speaks
// nfnetlink; google/nftables' Conn cannot send a table comment, look up single set elements, or say
// which message of a batch failed, and this backend needs all three.

// table is the backend's one table.
func table() nftnl.Table { return nftnl.Table{Family: unix.NFPROTO_INET, Name: TableName} }

func (s setDef) set(id uint32) nftnl.Set {
	keyType, keyLen := nftnl.Concat(s.key...)
	dataType, dataLen := nftnl.Concat(s.data...)
	return nftnl.Set{
		Name:    s.name,
		KeyType: keyType, KeyLen: keyLen,
		DataType: dataType, DataLen: dataLen,
		ID:      id,
		Comment: s.comment,
	}
}

func (r ruleDef) rule() nftnl.Rule {
	return nftnl.Rule{Chain: r.chain, Comment: r.comment, Exprs: r.exprs}
}

func (e elem) nl() nftnl.Elem { return nftnl.Elem{Key: e.key, Data: e.data, Comment: e.comment} }

func elemOf(set string, x nftnl.Elem) elem {
	return elem{set: set, key: x.Key, data: x.Data, comment: x.Comment}
}

// query asks for the element of e's slot.
func (e elem) query() nftnl.ElemQuery { return nftnl.ElemQuery{Set: e.set, Key: e.key} }

// lookup looks up single elements; a missing one comes back as nil.
func lookup(c *nftnl.Conn, qs []nftnl.ElemQuery) ([]*elem, error) {
	got, err := c.GetElems(table(), qs)
	if err != nil {
		return nil, err
	}
	out := make([]*elem, len(got))
	for i, g := range got {
		if g != nil {
			e := elemOf(qs[i].Set, *g)
			out[i] = &e
		}
	}
	return out, nil
}

// readState lists every element of every map.
func readState(c *nftnl.Conn) (state, error) {
	st := state{byID: map[string]elem{}}
	sets, err := c.Sets(table())
	if err != nil {
		return st, err
	}
	for _, name := range sets {
		es, err := c.Elems(table(), name)
		if err != nil {
			return st, err
		}
		for _, x := range es {
			e := elemOf(name, x)
			st.elems = append(st.elems, e)
			st.byID[e.id()] = e
		}
	}
	return st, nil
}

// addMsgs adds es, one message per map.
func addMsgs(es []elem) ([]nftnl.Msg, error) { return perMap(es, nftnl.Table.AddElems) }

// removeMsgs deletes es, each only if it still holds the data it was read with: re-adding an element
// as it is changes nothing, re-adding one whose data changed fails the transaction, and one that is
// gone is re-added and deleted again.
func removeMsgs(es []elem) ([]nftnl.Msg, error) {
	return perMap(es, nftnl.Table.AddElems, nftnl.Table.DelElems)
}

// perMap is the messages that apply ops, in order, to es's elements of each map in turn.
func perMap(es []elem, ops ...func(nftnl.Table, string, []nftnl.Elem) (nftnl.Msg, error)) ([]nftnl.Msg, error) {
	var b nftnl.Batch
	order, groups := bySet(es)
	for _, set := range order {
		for _, op := range ops {
			b.Add(op(table(), set, nlElems(groups[set])))
		}
	}
	return b.Msgs()
}

func nlElems(es []elem) []nftnl.Elem {
	out := make([]nftnl.Elem, len(es))
	for i, e := range es {
		out[i] = e.nl()
	}
	return out
}
