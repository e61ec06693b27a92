package nftables

import (
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/portmap"
)

// ElementMsgs returns the messages that add k's elements for ms, and those that remove them again
// (retire them in a timed table, delete them otherwise), on a node whose table, chains and maps are in
// place: the least an ADD and a DEL of this backend send, with nothing read first. Add and Remove send
// these too, after the reads that make them safe (the skeleton's state, the owners of host ports);
// test/bench's BenchmarkFloor uses them to measure what the kernel alone costs.
func ElementMsgs(k firewall.Key, ms []portmap.Mapping, o portmap.Options, timed bool) (add, del []nftnl.Msg, err error) {
	p, err := desired(k, ms, o)
	if err != nil {
		return nil, nil, err
	}
	if add, err = addMsgs(p.elems, timed); err != nil {
		return nil, nil, err
	}
	if timed {
		del, err = perMap(p.elems, nftnl.Table.RetireElems)
	} else {
		del, err = perMap(p.elems, nftnl.Table.DelElems)
	}
	return add, del, err
}
