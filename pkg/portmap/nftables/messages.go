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

// set is the map to add; timed gives it the timeout its elements need to be retired.
func (s setDef) set(id uint32, timed bool) nftnl.Set {
	keyType, keyLen := nftnl.Concat(s.key...)
	dataType, dataLen := nftnl.Concat(s.data...)
	out := nftnl.Set{
		Name:    s.name,
		KeyType: keyType, KeyLen: keyLen,
		DataType: dataType, DataLen: dataLen,
		ID:      id,
		Comment: s.comment,
	}
	if timed {
		out.Timeout = elemLifetime
	}
	return out
}

// maps is what a listing of the table's sets says: which exist, and whether the table is timed. A
// table is timed or not as a whole: it is when the kernel updates expirations and every map it has has
// a timeout (a table without maps is made timed then); maps added to it later follow. One map without a
// timeout (a table made by an earlier version, or changed by hand) makes it untimed: its elements are
// added without expirations, which maps of either kind take, and deleted.
type maps struct {
	names []string // in the kernel's order
	exist map[string]bool
	timed bool
}

func listMaps(c *nftnl.Conn, m *Mapper) (maps, error) {
	sets, err := c.Sets(table())
	if err != nil {
		return maps{}, err
	}
	out := maps{exist: map[string]bool{}, timed: nftnl.ExpiryUpdates() && !m.untimed}
	for _, s := range sets {
		out.names = append(out.names, s.Name)
		out.exist[s.Name] = true
		out.timed = out.timed && s.Timeout > 0
	}
	return out, nil
}

func (r ruleDef) rule() nftnl.Rule {
	return nftnl.Rule{Chain: r.chain, Comment: r.comment, Exprs: r.exprs}
}

func (e elem) nl() nftnl.Elem { return nftnl.Elem{Key: e.key, Data: e.data, Comment: e.comment} }

func elemOf(set string, x nftnl.Elem) elem {
	return elem{set: set, key: x.Key, data: x.Data, comment: x.Comment,
		retiring: x.Expires && x.Expiration < retiringWithin}
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
func readState(c *nftnl.Conn, m *Mapper) (state, error) {
	st := state{byID: map[string]elem{}}
	var err error
	if st.maps, err = listMaps(c, m); err != nil {
		return st, err
	}
	for _, name := range st.maps.names {
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

// addMsgs adds es, one message per map. In a timed table each element is given its full lifetime
// explicitly, so that adding an element that a DEL retired a moment ago, with the same data, revives it
// instead of being taken as a no-op and expiring.
func addMsgs(es []elem, timed bool) ([]nftnl.Msg, error) {
	if !timed {
		return perMap(es, nftnl.Table.AddElems)
	}
	return perMap(es, func(t nftnl.Table, set string, xs []nftnl.Elem) (nftnl.Msg, error) {
		for i := range xs {
			xs[i].Expiration = elemLifetime
		}
		return t.AddElems(set, xs)
	})
}

// dropMsgs removes es from a table: retires them in a timed one when retire, deletes them otherwise
// (removeMsgs).
func dropMsgs(es []elem, timed, retire bool) ([]nftnl.Msg, error) {
	if timed && retire {
		return perMap(es, nftnl.Table.RetireElems)
	}
	return removeMsgs(es)
}

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
