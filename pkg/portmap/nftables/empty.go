package nftables

import "github.com/netloom/netloom/pkg/nftnl"

// Empty tells whether no map of the table holds an element but those being retired (also when there is
// no table): no attachment's forwarding is left, so the table can go when the node leaves netloom.
func Empty() (bool, error) {
	c, err := nftnl.Dial()
	if err != nil {
		return false, err
	}
	defer c.Close()
	st, err := readState(c, New())
	if err != nil {
		return false, err
	}
	for _, e := range st.elems {
		if !e.retiring {
			return false, nil
		}
	}
	return true, nil
}
