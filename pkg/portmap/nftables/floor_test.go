package nftables

import (
	"slices"
	"strings"
	"testing"

	"github.com/netloom/netloom/pkg/nftnl"
	"github.com/netloom/netloom/pkg/portmap"
)

// ElementMsgs adds and deletes (in a timed table: retires), map by map, the elements Add plans, and
// nothing else.
func TestElementMsgs(t *testing.T) {
	ms := []portmap.Mapping{mapping(portmap.TCP, "", 8080, "10.1.0.5/16", 80)}
	o := portmap.Options{SNAT: true}
	add, del, err := ElementMsgs(keyA, ms, o, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := desired(keyA, ms, o)
	if err != nil {
		t.Fatal(err)
	}
	sets, _ := bySet(p.elems)
	var wantAdd, wantDel []string
	for _, s := range sets {
		wantAdd = append(wantAdd, "add elements to "+s)
		wantDel = append(wantDel, "delete elements from "+s)
	}
	what := func(ms []nftnl.Msg) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.What)
		}
		return out
	}
	if got := what(add); !slices.Equal(got, wantAdd) {
		t.Errorf("add messages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantAdd, "\n"))
	}
	if got := what(del); !slices.Equal(got, wantDel) {
		t.Errorf("delete messages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantDel, "\n"))
	}
	_, retire, err := ElementMsgs(keyA, ms, o, true)
	if err != nil {
		t.Fatal(err)
	}
	var wantRetire []string
	for _, s := range sets {
		wantRetire = append(wantRetire, "retire elements of "+s)
	}
	if got := what(retire); !slices.Equal(got, wantRetire) {
		t.Errorf("messages of a timed table's DEL:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRetire, "\n"))
	}
	if _, _, err := ElementMsgs(keyA, []portmap.Mapping{mapping("icmp", "", 1, "10.1.0.5/16", 1)}, o, false); err == nil {
		t.Error("a mapping of an unknown protocol gave messages")
	}
}
