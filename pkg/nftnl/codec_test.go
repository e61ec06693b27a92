package nftnl

import (
	"encoding/binary"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/nftnl/internal/nlattr"
)

var testTable = Table{Family: unix.NFPROTO_INET, Name: "nftnl_test"}

// reply makes a message body as the kernel sends it back: the nfnetlink header, then attrs.
func reply(attrs []byte) []byte {
	return append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...)
}

// must fails t on an encoding error: must(t)(table.AddRule(r)).
func must(t testing.TB) func(Msg, error) Msg {
	return func(m Msg, err error) Msg {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

// describe renders the expressions of r, decoding them.
func describe(t testing.TB, r Rule) string {
	t.Helper()
	exprs, err := r.Expressions()
	if err != nil {
		t.Fatal(err)
	}
	return expr.Describe(exprs)
}

// sampleExprs covers the expression kinds netloom's layouts use: loads, compares, masks, lookups with
// and without a data register, NAT, masquerade and the verdicts.
func sampleExprs() [][]expr.Any {
	return [][]expr.Any{
		{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{2, 0, 0, 0}},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: "hostports"},
		},
		{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: "dnat4"},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9},
		},
		{
			&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0x20, 0, 0, 0}, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			&expr.Lookup{SourceRegister: 1, SetName: "masqall4"},
			&expr.Masq{},
		},
		{&expr.Verdict{Kind: expr.VerdictReturn}},
		{&expr.Verdict{Kind: expr.VerdictGoto, Chain: "masq_checks"}},
		{&expr.Counter{}}, // one netloom does not write: read back all the same
	}
}

func TestRuleRoundTrip(t *testing.T) {
	for i, exprs := range sampleExprs() {
		comment := ""
		if i%2 == 0 {
			comment = "rule with a comment"
		}
		m := must(t)(testTable.AddRule(Rule{Chain: "c", Comment: comment, Exprs: exprs}))
		if m.Type != unix.NFT_MSG_NEWRULE || m.Flags != unix.NLM_F_CREATE|unix.NLM_F_APPEND || m.Family != unix.NFPROTO_INET {
			t.Errorf("rule %d: message %d flags %#x family %d", i, m.Type, m.Flags, m.Family)
		}
		table, r, err := parseRule(reply(m.Attrs))
		if err != nil {
			t.Fatal(err)
		}
		if table != testTable.Name || r.Chain != "c" || r.Comment != comment {
			t.Errorf("rule %d read back as table %q chain %q comment %q", i, table, r.Chain, r.Comment)
		}
		if r.Exprs != nil {
			t.Errorf("rule %d read back with Exprs set: they are decoded on demand", i)
		}
		if got, want := describe(t, r), expr.Describe(exprs); got != want {
			t.Errorf("rule %d read back as\n%s\nwant\n%s", i, got, want)
		}
	}
}

func TestChainRoundTrip(t *testing.T) {
	for _, ch := range []Chain{
		{Name: "regular"},
		{Name: "postrouting", Hook: &Hook{Type: "nat", Num: unix.NF_INET_POST_ROUTING, Priority: 100}},
		{Name: "prerouting", Hook: &Hook{Type: "nat", Num: unix.NF_INET_PRE_ROUTING, Priority: -100}},
	} {
		m := must(t)(testTable.AddChain(ch))
		table, got, err := parseChain(reply(m.Attrs))
		if err != nil {
			t.Fatal(err)
		}
		if table != testTable.Name || got.Name != ch.Name || got.Kind() != ch.Kind() {
			t.Errorf("%s read back as %q %q %q", ch.Name, table, got.Name, got.Kind())
		}
	}
	if got := (Chain{Name: "p", Hook: &Hook{Type: "nat", Num: 4, Priority: 100}}).Kind(); got != "type nat hook 4 priority 100" {
		t.Errorf("Kind = %q", got)
	}
}

func TestElemsRoundTrip(t *testing.T) {
	es := []Elem{
		{Key: []byte{6, 0, 0, 0, 0x1f, 0x90, 0, 0}, Data: []byte{10, 88, 0, 5, 0, 80, 0, 0}, Comment: "owner-1 net/c1/eth0"},
		{Key: []byte{17, 0, 0, 0, 0, 53, 0, 0}, Data: []byte{10, 88, 0, 6, 0, 53, 0, 0}},
	}
	add := must(t)(testTable.AddElems("dnat4_any", es))
	set, got, err := parseElems(reply(add.Attrs))
	if err != nil {
		t.Fatal(err)
	}
	if set != "dnat4_any" || len(got) != len(es) {
		t.Fatalf("read back %d elements of %q", len(got), set)
	}
	for i := range es {
		if !slices.Equal(got[i].Key, es[i].Key) || !slices.Equal(got[i].Data, es[i].Data) || got[i].Comment != es[i].Comment {
			t.Errorf("element %d read back as %+v, want %+v", i, got[i], es[i])
		}
	}
	// A deletion names keys only.
	del := must(t)(testTable.DelElems("dnat4_any", es))
	_, got, err = parseElems(reply(del.Attrs))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got {
		if !slices.Equal(e.Key, es[i].Key) || e.Data != nil || e.Comment != "" {
			t.Errorf("delete element %d carries %+v", i, e)
		}
	}
}

func TestSetRoundTrip(t *testing.T) {
	for _, timeout := range []time.Duration{0, 100 * 365 * 24 * time.Hour} {
		m := must(t)(testTable.AddSet(Set{Name: "owner4", KeyType: 7, KeyLen: 4, DataType: 8, DataLen: 16, ID: 3, Comment: "c", Timeout: timeout}))
		table, s, err := parseSet(reply(m.Attrs))
		if err != nil || table != testTable.Name || s.Name != "owner4" || s.Timeout != timeout {
			t.Errorf("set with timeout %v read back as %q %+v, %v", timeout, table, s, err)
		}
		flags := attrUint32(t, m.Attrs, unix.NFTA_SET_FLAGS)
		if want := uint32(unix.NFT_SET_MAP); timeout > 0 && flags != want|unix.NFT_SET_TIMEOUT || timeout == 0 && flags != want {
			t.Errorf("set with timeout %v has flags %#x", timeout, flags)
		}
	}
}

// A retirement is an addition of the element as it was read, with an expiration of 1 ms.
func TestRetireElems(t *testing.T) {
	es := []Elem{{Key: []byte{0, 80}, Data: []byte{10, 0, 0, 1}, Comment: "mine"}}
	m := must(t)(testTable.RetireElems("dnat4_any", es))
	if m.Type != unix.NFT_MSG_NEWSETELEM || m.Flags&unix.NLM_F_EXCL != 0 || deletes(m) {
		t.Errorf("retirement is message %d flags %#x", m.Type, m.Flags)
	}
	_, got, err := parseElems(reply(m.Attrs))
	if err != nil || len(got) != 1 {
		t.Fatalf("retired elements read back as %+v, %v", got, err)
	}
	if g := got[0]; !slices.Equal(g.Key, es[0].Key) || !slices.Equal(g.Data, es[0].Data) || g.Comment != "mine" || g.Expiration != time.Millisecond || !g.Expires {
		t.Errorf("retired element carries %+v", g)
	}
	if es[0].Expiration != 0 {
		t.Error("RetireElems changed its argument")
	}
}

func TestBatchFraming(t *testing.T) {
	msgs := []Msg{
		must(t)(testTable.Add("a comment")),
		must(t)(testTable.AddChain(Chain{Name: "c"})),
		must(t)(testTable.FlushChain("c")),
	}
	const first = 1000
	parsed, err := syscall.ParseNetlinkMessage(batch(msgs, first))
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []uint16{unix.NFNL_MSG_BATCH_BEGIN, nftType(unix.NFT_MSG_NEWTABLE), nftType(unix.NFT_MSG_NEWCHAIN),
		nftType(unix.NFT_MSG_DELRULE), unix.NFNL_MSG_BATCH_END}
	if len(parsed) != len(wantTypes) {
		t.Fatalf("%d messages, want %d", len(parsed), len(wantTypes))
	}
	for i, m := range parsed {
		h := m.Header
		if h.Type != wantTypes[i] || h.Seq != first+uint32(i) {
			t.Errorf("message %d: type %#x seq %d, want %#x %d", i, h.Type, h.Seq, wantTypes[i], first+i)
		}
		inner := i > 0 && i < len(parsed)-1
		if acked := h.Flags&unix.NLM_F_ACK != 0; acked != inner {
			t.Errorf("message %d: ack %v", i, acked)
		}
		family, resID := m.Data[0], binary.BigEndian.Uint16(m.Data[2:4])
		if inner && (family != unix.NFPROTO_INET || resID != 0) {
			t.Errorf("message %d: family %d resID %d", i, family, resID)
		}
		if !inner && (family != unix.AF_UNSPEC || resID != unix.NFNL_SUBSYS_NFTABLES) {
			t.Errorf("batch delimiter %d: family %d resID %d", i, family, resID)
		}
	}
	if parsed[1].Header.Flags&unix.NLM_F_CREATE == 0 || parsed[3].Header.Flags&unix.NLM_F_CREATE != 0 {
		t.Error("message flags not carried")
	}
}

func TestErrnoOf(t *testing.T) {
	msg := func(errno int32) syscall.NetlinkMessage {
		return syscall.NetlinkMessage{Data: binary.NativeEndian.AppendUint32(nil, uint32(errno))}
	}
	if err := errnoOf(msg(0)); err != nil {
		t.Errorf("an acknowledgement reads as %v", err)
	}
	if err := errnoOf(msg(-int32(unix.ENOENT))); !errors.Is(err, unix.ENOENT) {
		t.Errorf("errnoOf(-ENOENT) = %v", err)
	}
	if err := errnoOf(syscall.NetlinkMessage{}); err != nil {
		t.Errorf("an empty message reads as %v", err)
	}
}

func TestGeneration(t *testing.T) {
	elems := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: nftType(unix.NFT_MSG_NEWSETELEM)}, Data: reply(nil)}
	binary.BigEndian.PutUint16(elems.Data[2:4], 0x1234)
	if g, ok := generation(elems); !ok || g != 0x1234 {
		t.Errorf("generation = %#x, %v", g, ok)
	}
	done := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.NLMSG_DONE}, Data: make([]byte, 4)}
	if _, ok := generation(done); ok {
		t.Error("NLMSG_DONE has a generation")
	}
}

func TestBatchKeepsTheFirstError(t *testing.T) {
	var b Batch
	b.Add(Msg{What: "one"}, nil)
	b.Add(Msg{}, errors.New("first"))
	b.Add(Msg{}, errors.New("second"))
	if _, err := b.Msgs(); err == nil || err.Error() != "first" {
		t.Errorf("Msgs error = %v, want first", err)
	}
	var ok Batch
	ok.Add(Msg{What: "one"}, nil)
	ok.Add(Msg{What: "two"}, nil)
	if msgs, err := ok.Msgs(); err != nil || len(msgs) != 2 {
		t.Errorf("Msgs = %v, %v", msgs, err)
	}
}

func TestChainProblem(t *testing.T) {
	post := Chain{Name: "postrouting", Hook: &Hook{Type: "nat", Num: unix.NF_INET_POST_ROUTING, Priority: 100}}
	for _, tc := range []struct {
		name      string
		installed []Chain
		want      string
		found     bool
	}{
		{"there", []Chain{{Name: "x"}, post}, "", true},
		{"missing", []Chain{{Name: "x"}}, "chain nftnl_test postrouting is missing", false},
		{"regular", []Chain{{Name: "postrouting"}}, `chain nftnl_test postrouting is "regular", want "type nat hook 4 priority 100"`, true},
	} {
		problem, found := testTable.ChainProblem(tc.installed, post)
		if problem != tc.want || found != tc.found {
			t.Errorf("%s: %q %v, want %q %v", tc.name, problem, found, tc.want, tc.found)
		}
	}
}

// Dial needs no privilege: the socket and its options are checked here, the requests as root.
func TestDialSetsAReceiveTimeout(t *testing.T) {
	c, err := Dial()
	if err != nil {
		t.Skipf("no nf_tables netlink socket here: %v", err)
	}
	defer c.Close()
	tv, err := unix.GetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(tv.Nano()); got != recvTimeout {
		t.Errorf("receive timeout %v, want %v", got, recvTimeout)
	}
}

func TestRuleJumpsTo(t *testing.T) {
	jump := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: "CNI-0123"},
	}
	for _, tc := range []struct {
		name  string
		exprs []expr.Any
		chain string
		want  bool
	}{
		{"its jump", jump, "CNI-0123", true},
		{"another chain", jump, "CNI-0124", false},
		{"a prefix of its chain", jump, "CNI-01", false},
		{"a goto", []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: "CNI-0123"}}, "CNI-0123", false},
		{"the name not in the verdict", []expr.Any{
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("CNI-0123\x00")},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}, "CNI-0123", false},
	} {
		m := must(t)(testTable.AddRule(Rule{Chain: "POSTROUTING", Exprs: tc.exprs}))
		_, read, err := parseRule(reply(m.Attrs))
		if err != nil {
			t.Fatal(err)
		}
		written := Rule{Chain: "POSTROUTING", Exprs: tc.exprs}
		if got := read.JumpsTo(tc.chain); got != tc.want {
			t.Errorf("%s: read back: JumpsTo(%q) = %v, want %v", tc.name, tc.chain, got, tc.want)
		}
		if got := written.JumpsTo(tc.chain); got != tc.want {
			t.Errorf("%s: as written: JumpsTo(%q) = %v, want %v", tc.name, tc.chain, got, tc.want)
		}
	}
}

// TestDeletes: the messages that make the kernel free something after a grace period, which Close then
// waits out before releasing the socket, and those that do not.
func TestDeletes(t *testing.T) {
	m := must(t)
	for _, tc := range []struct {
		name string
		msg  Msg
		want bool
	}{
		{"add table", m(testTable.Add("")), false},
		{"delete table", m(testTable.Del()), true},
		{"add chain", m(testTable.AddChain(Chain{Name: "c"})), false},
		{"delete chain", m(testTable.DelChain("c")), true},
		{"flush chain", m(testTable.FlushChain("c")), true},
		{"add rule", m(testTable.AddRule(Rule{Chain: "c"})), false},
		{"delete rule", m(testTable.DelRule("c", 7)), true},
		{"add elements", m(testTable.AddElems("s", nil)), false},
		{"delete elements", m(testTable.DelElems("s", nil)), true},
	} {
		if got := deletes(tc.msg); got != tc.want {
			t.Errorf("%s: deletes = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// attrUint32 is the 32-bit attribute typ of a message's attributes (0 when missing).
func attrUint32(t *testing.T, attrs []byte, typ uint16) uint32 {
	t.Helper()
	d := nlattr.NewDecoder(attrs)
	for d.Next() {
		if d.Type() == typ {
			return d.Uint32()
		}
	}
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	return 0
}
