package nftables

import (
	"os"
	"slices"
	"testing"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall"
	"github.com/netloom/netloom/pkg/nftnl"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       recordState
	}{
		{"handles", `{"handles":[4,5]}`, usable},
		{"pending", `{"pending":true}`, unusable},
		{"pending with handles", `{"pending":true,"handles":[4]}`, unusable},
		{"no handles", `{}`, unusable},
		{"zero handle", `{"handles":[0]}`, unusable},
		{"cut short", `{"handles":[4,`, unusable},
		{"garbage", "\x00\x01", unusable},
		{"unknown field", `{"handles":[4],"table":"x"}`, unusable},
		{"two records", `{"handles":[4]}{"handles":[5]}`, unusable},
		{"empty", ``, unusable},
	} {
		if _, got := parseRecord([]byte(tc.text)); got != tc.want {
			t.Errorf("%s: state %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	rs := records{dir: t.TempDir() + "/masq"} // made on the first store
	if _, st, err := rs.load(keyA); err != nil || st != noRecord {
		t.Fatalf("no file: state %d, %v", st, err)
	}
	if err := rs.store(keyA, record{Pending: true}); err != nil {
		t.Fatal(err)
	}
	if _, st, err := rs.load(keyA); err != nil || st != unusable {
		t.Fatalf("pending: state %d, %v", st, err)
	}
	if err := rs.store(keyA, record{Handles: []uint64{7, 9}}); err != nil {
		t.Fatal(err)
	}
	r, st, err := rs.load(keyA)
	if err != nil || st != usable || !slices.Equal(r.Handles, []uint64{7, 9}) {
		t.Fatalf("round trip: %+v, state %d, %v", r, st, err)
	}
	if err := os.WriteFile(rs.path(keyA), []byte(`{"hand`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, st, err := rs.load(keyA); err != nil || st != unusable {
		t.Fatalf("garbled: state %d, %v", st, err)
	}
	if err := rs.remove(keyA); err != nil {
		t.Fatal(err)
	}
	if err := rs.remove(keyA); err != nil {
		t.Fatalf("removing a missing record: %v", err)
	}
	if _, st, _ := rs.load(keyA); st != noRecord {
		t.Fatalf("after remove: state %d", st)
	}
}

// GC's match deletes the records of the network's attachments that are not valid, and no other.
func TestRemoveStaleRecords(t *testing.T) {
	rs := records{dir: t.TempDir()}
	valid := firewall.Key{Network: "mynet", ContainerID: "live", IfName: "eth0"}
	gone := firewall.Key{Network: "mynet", ContainerID: "gone", IfName: "eth0"}
	other := firewall.Key{Network: "othernet", ContainerID: "gone", IfName: "eth0"}
	for _, k := range []firewall.Key{valid, gone, other} {
		if err := rs.store(k, record{Handles: []uint64{1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.removeWhere(staleFor("mynet", map[conf.Attachment]bool{valid.Attachment(): true})); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[firewall.Key]recordState{valid: usable, gone: noRecord, other: usable} {
		if _, st, err := rs.load(k); err != nil || st != want {
			t.Errorf("%v: state %d, want %d (%v)", k, st, want, err)
		}
	}
	if err := (records{dir: t.TempDir() + "/none"}).removeWhere(func(string) bool { return true }); err != nil {
		t.Errorf("missing directory: %v", err)
	}
}

// A record is trusted only when every rule it names is there and is the attachment's.
func TestConfirmed(t *testing.T) {
	mine := &nftnl.Rule{Chain: MasqChain, Handle: 4, Comment: Comment(keyA)}
	theirs := &nftnl.Rule{Chain: MasqChain, Handle: 5, Comment: Comment(firewall.Key{Network: "mynet", ContainerID: "c2", IfName: "eth0"})}
	for _, tc := range []struct {
		name  string
		found []*nftnl.Rule
		ok    bool
	}{
		{"all mine", []*nftnl.Rule{mine, mine}, true},
		{"one gone", []*nftnl.Rule{mine, nil}, false},
		{"one someone else's", []*nftnl.Rule{mine, theirs}, false},
		{"none", nil, false},
	} {
		rules, ok := confirmed(tc.found, instanceHash(keyA))
		if ok != tc.ok || (ok && len(rules) != len(tc.found)) {
			t.Errorf("%s: %d rules, ok %v, want ok %v", tc.name, len(rules), ok, tc.ok)
		}
	}
}

func TestKeptHandles(t *testing.T) {
	mine := []installed{{handle: 3}, {handle: 4}, {handle: 8}}
	if got := keptHandles(mine, []installed{{handle: 4}}); !slices.Equal(got, []uint64{3, 8}) {
		t.Errorf("kept %v, want [3 8]", got)
	}
}
