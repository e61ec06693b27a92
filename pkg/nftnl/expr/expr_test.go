package expr

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	gexpr "github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl/internal/nlattr"
)

// pair is one expression as netloom writes it and the same as google/nftables' value.
type pair struct {
	name   string
	ours   Any
	theirs gexpr.Any
}

// pairs cover every type and every field the encoders write.
func pairs() []pair {
	return []pair{
		{"meta load", &Meta{Key: MetaKeyNFPROTO, Register: 1}, &gexpr.Meta{Key: gexpr.MetaKeyNFPROTO, Register: 1}},
		{"meta set", &Meta{Key: MetaKeyL4PROTO, SourceRegister: true, Register: 2}, &gexpr.Meta{Key: gexpr.MetaKeyL4PROTO, SourceRegister: true, Register: 2}},
		{"meta iifname", &Meta{Key: MetaKeyIIFNAME, Register: 1}, &gexpr.Meta{Key: gexpr.MetaKeyIIFNAME, Register: 1}},
		{"cmp eq", &Cmp{Op: CmpOpEq, Register: 1, Data: []byte{2}}, &gexpr.Cmp{Op: gexpr.CmpOpEq, Register: 1, Data: []byte{2}}},
		{"cmp neq 16", &Cmp{Op: CmpOpNeq, Register: 9, Data: bytes.Repeat([]byte{0xfd}, 16)}, &gexpr.Cmp{Op: gexpr.CmpOpNeq, Register: 9, Data: bytes.Repeat([]byte{0xfd}, 16)}},
		{"payload nh", &Payload{DestRegister: 1, Base: PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&gexpr.Payload{DestRegister: 1, Base: gexpr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}},
		{"payload th", &Payload{DestRegister: 10, Base: PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&gexpr.Payload{DestRegister: 10, Base: gexpr.PayloadBaseTransportHeader, Offset: 2, Len: 2}},
		{"bitwise", &Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0xff, 0xf0, 0, 0}, Xor: make([]byte, 4)},
			&gexpr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0xff, 0xf0, 0, 0}, Xor: make([]byte, 4)}},
		{"accept", &Verdict{Kind: VerdictAccept}, &gexpr.Verdict{Kind: gexpr.VerdictAccept}},
		{"drop", &Verdict{Kind: VerdictDrop}, &gexpr.Verdict{Kind: gexpr.VerdictDrop}},
		{"return", &Verdict{Kind: VerdictReturn}, &gexpr.Verdict{Kind: gexpr.VerdictReturn}},
		{"jump", &Verdict{Kind: VerdictJump, Chain: "hostports"}, &gexpr.Verdict{Kind: gexpr.VerdictJump, Chain: "hostports"}},
		{"goto", &Verdict{Kind: VerdictGoto, Chain: "masq_checks"}, &gexpr.Verdict{Kind: gexpr.VerdictGoto, Chain: "masq_checks"}},
		{"immediate", &Immediate{Register: 1, Data: []byte{10, 9, 0, 5}}, &gexpr.Immediate{Register: 1, Data: []byte{10, 9, 0, 5}}},
		{"masq", &Masq{}, &gexpr.Masq{}},
		{"masq flags", &Masq{Random: true, FullyRandom: true, Persistent: true}, &gexpr.Masq{Random: true, FullyRandom: true, Persistent: true}},
		{"masq to ports", &Masq{ToPorts: true, RegProtoMin: 1, RegProtoMax: 2}, &gexpr.Masq{ToPorts: true, RegProtoMin: 1, RegProtoMax: 2}},
		{"dnat", &NAT{Type: NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9},
			&gexpr.NAT{Type: gexpr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9}},
		{"snat ranges and flags", &NAT{Type: NATTypeSourceNAT, Family: unix.NFPROTO_IPV6, RegAddrMin: 1, RegAddrMax: 2, RegProtoMin: 3, RegProtoMax: 4,
			Random: true, FullyRandom: true, Persistent: true, Prefix: true, Specified: true},
			&gexpr.NAT{Type: gexpr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV6, RegAddrMin: 1, RegAddrMax: 2, RegProtoMin: 3, RegProtoMax: 4,
				Random: true, FullyRandom: true, Persistent: true, Prefix: true, Specified: true}},
		{"lookup", &Lookup{SourceRegister: 1, SetName: "masqall4"}, &gexpr.Lookup{SourceRegister: 1, SetName: "masqall4"}},
		{"lookup map", &Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: "dnat4"},
			&gexpr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: "dnat4"}},
		{"lookup inverted by id", &Lookup{SourceRegister: 1, SetID: 7, SetName: "s", Invert: true},
			&gexpr.Lookup{SourceRegister: 1, SetID: 7, SetName: "s", Invert: true}},
		{"ct state", &Ct{Key: CtKeySTATE, Register: 1}, &gexpr.Ct{Key: gexpr.CtKeySTATE, Register: 1}},
		{"ct status", &Ct{Key: CtKeySTATUS, Register: 1}, &gexpr.Ct{Key: gexpr.CtKeySTATUS, Register: 1}},
		{"ct dst reply", &Ct{Key: CtKeyDST, Register: 1, Direction: 1}, &gexpr.Ct{Key: gexpr.CtKeyDST, Register: 1, Direction: 1}},
		{"fib", &Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true}, &gexpr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true}},
		{"fib oif", &Fib{Register: 2, FlagSADDR: true, FlagMARK: true, FlagIIF: true, ResultOIF: true},
			&gexpr.Fib{Register: 2, FlagSADDR: true, FlagMARK: true, FlagIIF: true, ResultOIF: true}},
		{"fib oifname", &Fib{Register: 2, FlagOIF: true, FlagPRESENT: true, ResultOIFNAME: true},
			&gexpr.Fib{Register: 2, FlagOIF: true, FlagPRESENT: true, ResultOIFNAME: true}},
		{"counter", &Counter{Bytes: 1 << 40, Packets: 3}, &gexpr.Counter{Bytes: 1 << 40, Packets: 3}},
	}
}

// list is exprs as the body of NFTA_RULE_EXPRESSIONS, each encoded by enc.
func list[T any](exprs []T, enc func(T) []byte) []byte {
	var b []byte
	for _, e := range exprs {
		b = nlattr.AppendNested(b, unix.NFTA_LIST_ELEM, enc(e))
	}
	return b
}

func gmarshal(t *testing.T) func(gexpr.Any) []byte {
	return func(e gexpr.Any) []byte {
		b, err := gexpr.Marshal(unix.NFPROTO_INET, e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// Every expression encodes to the bytes google/nftables writes for it (what netloom wrote before
// this package, and what the reference plugins write).
func TestMarshalAsGoogleNftables(t *testing.T) {
	for _, p := range pairs() {
		if got, want := Marshal(p.ours), gmarshal(t)(p.theirs); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %x\nwant %x", p.name, got, want)
		}
	}
}

// Each expression reads back as itself: from its own encoding and from google/nftables'.
func TestParseRoundTrip(t *testing.T) {
	for _, p := range pairs() {
		for _, src := range []struct {
			name string
			b    []byte
		}{
			{"ours", list([]Any{p.ours}, Marshal)},
			{"google/nftables'", list([]gexpr.Any{p.theirs}, gmarshal(t))},
		} {
			got, err := ParseList(src.b)
			if err != nil {
				t.Fatalf("%s from %s: %v", p.name, src.name, err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], p.ours) {
				t.Errorf("%s from %s read back as %#v", p.name, src.name, got)
			}
		}
	}
	// A whole rule, in order.
	var all []Any
	for _, p := range pairs() {
		all = append(all, p.ours)
	}
	got, err := ParseList(AppendList(nil, all))
	if err != nil || !reflect.DeepEqual(got, all) {
		t.Errorf("rule read back as %s (%v), want %s", Describe(got), err, Describe(all))
	}
}

// What the kernel adds to the attributes netloom writes, and reads back as the same value.
func TestParseKernelForms(t *testing.T) {
	u32 := nlattr.AppendUint32
	for _, c := range []struct {
		name string
		kind string
		data []byte
		want Any
	}{
		{"bitwise with NFTA_BITWISE_OP mask-xor", "bitwise",
			u32(appendData(&Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0x20, 0, 0, 0}, Xor: make([]byte, 4)}), nftaBitwiseOp, nftBitwiseBool),
			&Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0x20, 0, 0, 0}, Xor: make([]byte, 4)}},
		{"lookup with zero flags", "lookup", u32(appendData(&Lookup{SourceRegister: 1, SetName: "s"}), unix.NFTA_LOOKUP_FLAGS, 0),
			&Lookup{SourceRegister: 1, SetName: "s"}},
		{"nat with the kernel's range flags", "nat",
			u32(appendData(&NAT{Type: NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9}), unix.NFTA_NAT_FLAGS, unix.NF_NAT_RANGE_MAP_IPS|unix.NF_NAT_RANGE_PROTO_SPECIFIED),
			&NAT{Type: NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9, Specified: true}},
		{"masq with a maximum port register and no minimum", "masq",
			u32(u32(nil, unix.NFTA_MASQ_FLAGS, unix.NF_NAT_RANGE_PROTO_RANDOM_FULLY), unix.NFTA_MASQ_REG_PROTO_MAX, 808464432),
			&Masq{FullyRandom: true}},
		{"nat with maximum registers and no minimums", "nat",
			u32(u32(u32(u32(nil, unix.NFTA_NAT_TYPE, unix.NFT_NAT_SNAT), unix.NFTA_NAT_FAMILY, unix.NFPROTO_IPV4), unix.NFTA_NAT_REG_ADDR_MAX, 2), unix.NFTA_NAT_REG_PROTO_MAX, 4),
			&NAT{Type: NATTypeSourceNAT, Family: unix.NFPROTO_IPV4}},
		{"ct direction as the kernel's u8", "ct",
			nlattr.Append(u32(u32(nil, unix.NFTA_CT_KEY, unix.NFT_CT_SRC), unix.NFTA_CT_DREG, 1), unix.NFTA_CT_DIRECTION, []byte{1}),
			&Ct{Key: CtKeySRC, Register: 1, Direction: 1}},
	} {
		got, err := ParseList(list([][]byte{elem(c.kind, c.data)}, func(b []byte) []byte { return b }))
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], c.want) {
			t.Errorf("%s: read back as %s (%v), want %s", c.name, Describe(got), err, Describe([]Any{c.want}))
		}
	}
}

func appendData(e Any) []byte { return e.appendData(nil) }

// elem is one NFTA_LIST_ELEM body: an expression's name and data.
func elem(name string, data []byte) []byte {
	return nlattr.AppendNested(nlattr.AppendString(nil, unix.NFTA_EXPR_NAME, name), unix.NFTA_EXPR_DATA, data)
}

// Expressions netloom does not model read back as Unknown, keep their bytes, and describe as nothing
// netloom builds.
func TestParseUnknown(t *testing.T) {
	u32 := nlattr.AppendUint32
	payloadWrite := u32(u32(u32(u32(u32(nil, unix.NFTA_PAYLOAD_SREG, 1), unix.NFTA_PAYLOAD_BASE, 1), unix.NFTA_PAYLOAD_OFFSET, 12), unix.NFTA_PAYLOAD_LEN, 4),
		unix.NFTA_PAYLOAD_CSUM_TYPE, 1)
	shift := u32(u32(u32(u32(u32(nil, unix.NFTA_BITWISE_SREG, 1), unix.NFTA_BITWISE_DREG, 1), unix.NFTA_BITWISE_LEN, 4), nftaBitwiseOp, 1),
		nftaBitwiseData, 8)
	for _, c := range []struct {
		name   string
		theirs []byte // an NFTA_LIST_ELEM body
		like   Any    // what it would be mistaken for, were it modelled loosely
	}{
		{"log", gmarshal(t)(&gexpr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte("x")}), nil},
		{"limit", gmarshal(t)(&gexpr.Limit{Type: gexpr.LimitTypePkts, Rate: 5, Unit: gexpr.LimitTimeSecond}), nil},
		{"reject", gmarshal(t)(&gexpr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3}), nil},
		{"quota", gmarshal(t)(&gexpr.Quota{Bytes: 1 << 20}), nil},
		{"payload write", elem("payload", payloadWrite), &Payload{Base: PayloadBaseNetworkHeader, Offset: 12, Len: 4}},
		{"bitwise shift", elem("bitwise", shift), &Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4}},
		{"verdict into a data register", elem("immediate", append(u32(nil, unix.NFTA_IMMEDIATE_DREG, 1), (&Verdict{Kind: VerdictAccept}).appendData(nil)[8:]...)), &Verdict{Kind: VerdictAccept}},
	} {
		got, err := ParseList(list([][]byte{c.theirs}, func(b []byte) []byte { return b }))
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %v %v", c.name, got, err)
		}
		u, ok := got[0].(*Unknown)
		if !ok {
			t.Errorf("%s read back as %s, want Unknown", c.name, Describe(got))
			continue
		}
		if re := Marshal(u); !bytes.Equal(re, c.theirs) {
			t.Errorf("%s written back as %x, want %x", c.name, re, c.theirs)
		}
		if c.like != nil && Describe(got) == Describe([]Any{c.like}) {
			t.Errorf("%s describes as %s", c.name, Describe(got))
		}
		if !strings.Contains(Describe(got), u.Name) {
			t.Errorf("%s describes as %s, without its name", c.name, Describe(got))
		}
	}
}

// Truncated and garbled attributes are errors, never panics; so is an element without a name.
func TestParseMalformed(t *testing.T) {
	var all []Any
	for _, p := range pairs() {
		all = append(all, p.ours)
	}
	good := AppendList(nil, all)
	for n := range len(good) {
		// Any prefix either parses (it ends between expressions) or fails; it never panics.
		_, _ = ParseList(good[:n])
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"short header", []byte{8, 0}},
		{"length past the end", []byte{12, 0, unix.NFTA_LIST_ELEM, 0, 0, 0, 0, 0}},
		{"length below a header", []byte{2, 0, unix.NFTA_LIST_ELEM, 0}},
		{"no name", nlattr.AppendNested(nil, unix.NFTA_LIST_ELEM, nlattr.AppendNested(nil, unix.NFTA_EXPR_DATA, nil))},
		{"a register of 2 bytes", list([][]byte{elem("cmp", nlattr.Append(nil, unix.NFTA_CMP_SREG, []byte{0, 1}))}, func(b []byte) []byte { return b })},
		{"a counter of 4 bytes", list([][]byte{elem("counter", nlattr.AppendUint32(nil, unix.NFTA_COUNTER_BYTES, 1))}, func(b []byte) []byte { return b })},
		{"a verdict with a short code", list([][]byte{elem("immediate",
			nlattr.AppendNested(nil, unix.NFTA_IMMEDIATE_DATA, nlattr.AppendNested(nil, unix.NFTA_DATA_VERDICT, nlattr.Append(nil, unix.NFTA_VERDICT_CODE, []byte{1}))))},
			func(b []byte) []byte { return b })},
		{"a garbled cmp value", list([][]byte{elem("cmp", nlattr.AppendNested(nil, unix.NFTA_CMP_DATA, []byte{9, 0, 1}))}, func(b []byte) []byte { return b })},
	} {
		if got, err := ParseList(c.b); err == nil {
			t.Errorf("%s: read as %s, want an error", c.name, Describe(got))
		}
	}
}

// FuzzParseList: any bytes decode to expressions or an error, never a panic, and what decodes
// re-encodes to something that decodes the same.
func FuzzParseList(f *testing.F) {
	var all []Any
	for _, p := range pairs() {
		all = append(all, p.ours)
		f.Add(AppendList(nil, []Any{p.ours}))
	}
	f.Add(AppendList(nil, all))
	f.Fuzz(func(t *testing.T, b []byte) {
		exprs, err := ParseList(b)
		if err != nil {
			return
		}
		again, err := ParseList(AppendList(nil, exprs))
		if err != nil {
			t.Fatalf("%s re-encoded does not decode: %v", Describe(exprs), err)
		}
		if Describe(again) != Describe(exprs) {
			t.Fatalf("%s re-encoded reads back as %s", Describe(exprs), Describe(again))
		}
	})
}
