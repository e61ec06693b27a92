package expr

import (
	"bytes"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl/internal/nlattr"
)

// MetaKey is what a meta expression loads (unix.NFT_META_*).
type MetaKey uint32

// The meta keys netloom matches on.
const (
	MetaKeyIIFNAME MetaKey = unix.NFT_META_IIFNAME
	MetaKeyOIFNAME MetaKey = unix.NFT_META_OIFNAME
	MetaKeyNFPROTO MetaKey = unix.NFT_META_NFPROTO
	MetaKeyL4PROTO MetaKey = unix.NFT_META_L4PROTO
)

// Meta loads packet metadata into Register, or with SourceRegister sets it from Register.
type Meta struct {
	Key            MetaKey
	SourceRegister bool
	Register       uint32
}

func (e *Meta) kind() string { return "meta" }

func (e *Meta) appendData(b []byte) []byte {
	b = nlattr.AppendUint32(b, unix.NFTA_META_KEY, uint32(e.Key))
	if e.SourceRegister {
		return nlattr.AppendUint32(b, unix.NFTA_META_SREG, e.Register)
	}
	return nlattr.AppendUint32(b, unix.NFTA_META_DREG, e.Register)
}

func parseMeta(d *nlattr.Decoder) (Any, bool, error) {
	e := &Meta{}
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_META_KEY:
			e.Key = MetaKey(d.Uint32())
		case unix.NFTA_META_DREG:
			e.Register = d.Uint32()
		case unix.NFTA_META_SREG:
			e.Register, e.SourceRegister = d.Uint32(), true
		}
	}
	return e, true, d.Err()
}

// CmpOp is a comparison (unix.NFT_CMP_*).
type CmpOp uint32

// The comparisons netloom uses.
const (
	CmpOpEq  CmpOp = unix.NFT_CMP_EQ
	CmpOpNeq CmpOp = unix.NFT_CMP_NEQ
)

// Cmp compares Register with Data.
type Cmp struct {
	Op       CmpOp
	Register uint32
	Data     []byte
}

func (e *Cmp) kind() string { return "cmp" }

func (e *Cmp) appendData(b []byte) []byte {
	b = nlattr.AppendUint32(b, unix.NFTA_CMP_SREG, e.Register)
	b = nlattr.AppendUint32(b, unix.NFTA_CMP_OP, uint32(e.Op))
	return appendValue(b, unix.NFTA_CMP_DATA, e.Data)
}

func parseCmp(d *nlattr.Decoder) (Any, bool, error) {
	e := &Cmp{}
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_CMP_SREG:
			e.Register = d.Uint32()
		case unix.NFTA_CMP_OP:
			e.Op = CmpOp(d.Uint32())
		case unix.NFTA_CMP_DATA:
			e.Data = value(d)
		}
	}
	return e, true, d.Err()
}

// PayloadBase is the header a payload offset counts from (unix.NFT_PAYLOAD_*).
type PayloadBase uint32

// The headers netloom loads from.
const (
	PayloadBaseNetworkHeader   PayloadBase = unix.NFT_PAYLOAD_NETWORK_HEADER
	PayloadBaseTransportHeader PayloadBase = unix.NFT_PAYLOAD_TRANSPORT_HEADER
)

// Payload loads Len bytes at Offset of the Base header into DestRegister. (A payload write, which
// netloom never makes, reads back as Unknown.)
type Payload struct {
	DestRegister uint32
	Base         PayloadBase
	Offset       uint32
	Len          uint32
}

func (e *Payload) kind() string { return "payload" }

func (e *Payload) appendData(b []byte) []byte {
	b = nlattr.AppendUint32(b, unix.NFTA_PAYLOAD_DREG, e.DestRegister)
	b = nlattr.AppendUint32(b, unix.NFTA_PAYLOAD_BASE, uint32(e.Base))
	b = nlattr.AppendUint32(b, unix.NFTA_PAYLOAD_OFFSET, e.Offset)
	return nlattr.AppendUint32(b, unix.NFTA_PAYLOAD_LEN, e.Len)
}

func parsePayload(d *nlattr.Decoder) (Any, bool, error) {
	e := &Payload{}
	ok := true
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_PAYLOAD_DREG:
			e.DestRegister = d.Uint32()
		case unix.NFTA_PAYLOAD_BASE:
			e.Base = PayloadBase(d.Uint32())
		case unix.NFTA_PAYLOAD_OFFSET:
			e.Offset = d.Uint32()
		case unix.NFTA_PAYLOAD_LEN:
			e.Len = d.Uint32()
		case unix.NFTA_PAYLOAD_SREG, unix.NFTA_PAYLOAD_CSUM_TYPE, unix.NFTA_PAYLOAD_CSUM_OFFSET, unix.NFTA_PAYLOAD_CSUM_FLAGS:
			ok = false
		}
	}
	return e, ok, d.Err()
}

// Attributes of the bitwise expression that golang.org/x/sys/unix does not define.
const (
	nftaBitwiseOp   = 6 // NFTA_BITWISE_OP
	nftaBitwiseData = 7 // NFTA_BITWISE_DATA: a shift's amount
	nftBitwiseBool  = 0 // NFT_BITWISE_BOOL (MASK_XOR): (reg & mask) ^ xor
)

// Bitwise sets DestRegister to (SourceRegister & Mask) ^ Xor over Len bytes. (Shifts and the
// register-to-register operations of newer kernels read back as Unknown.)
type Bitwise struct {
	SourceRegister uint32
	DestRegister   uint32
	Len            uint32
	Mask           []byte
	Xor            []byte
}

func (e *Bitwise) kind() string { return "bitwise" }

func (e *Bitwise) appendData(b []byte) []byte {
	b = nlattr.AppendUint32(b, unix.NFTA_BITWISE_SREG, e.SourceRegister)
	b = nlattr.AppendUint32(b, unix.NFTA_BITWISE_DREG, e.DestRegister)
	b = nlattr.AppendUint32(b, unix.NFTA_BITWISE_LEN, e.Len)
	b = appendValue(b, unix.NFTA_BITWISE_MASK, e.Mask)
	return appendValue(b, unix.NFTA_BITWISE_XOR, e.Xor)
}

func parseBitwise(d *nlattr.Decoder) (Any, bool, error) {
	e := &Bitwise{}
	ok := true
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_BITWISE_SREG:
			e.SourceRegister = d.Uint32()
		case unix.NFTA_BITWISE_DREG:
			e.DestRegister = d.Uint32()
		case unix.NFTA_BITWISE_LEN:
			e.Len = d.Uint32()
		case unix.NFTA_BITWISE_MASK:
			e.Mask = value(d)
		case unix.NFTA_BITWISE_XOR:
			e.Xor = value(d)
		case nftaBitwiseOp:
			ok = ok && d.Uint32() == nftBitwiseBool
		default:
			ok = false // NFTA_BITWISE_DATA (a shift), NFTA_BITWISE_SREG2, ...
		}
	}
	return e, ok, d.Err()
}

// VerdictKind is a verdict code (unix.NF_* and unix.NFT_*, as nft numbers them).
type VerdictKind int64

// The verdicts.
const (
	VerdictReturn VerdictKind = iota - 5
	VerdictGoto
	VerdictJump
	VerdictBreak
	VerdictContinue
	VerdictDrop
	VerdictAccept
)

// Verdict ends the rule: accept, drop, return, or jump or goto Chain. The kernel stores it as an
// immediate into the verdict register.
type Verdict struct {
	Kind  VerdictKind
	Chain string
}

func (e *Verdict) kind() string { return "immediate" }

func (e *Verdict) appendData(b []byte) []byte {
	v := nlattr.AppendUint32(nil, unix.NFTA_VERDICT_CODE, uint32(int32(e.Kind)))
	if e.Chain != "" {
		v = nlattr.AppendString(v, unix.NFTA_VERDICT_CHAIN, e.Chain)
	}
	b = nlattr.AppendUint32(b, unix.NFTA_IMMEDIATE_DREG, unix.NFT_REG_VERDICT)
	return nlattr.AppendNested(b, unix.NFTA_IMMEDIATE_DATA, nlattr.AppendNested(nil, unix.NFTA_DATA_VERDICT, v))
}

// Immediate loads Data into Register.
type Immediate struct {
	Register uint32
	Data     []byte
}

func (e *Immediate) kind() string { return "immediate" }

func (e *Immediate) appendData(b []byte) []byte {
	b = nlattr.AppendUint32(b, unix.NFTA_IMMEDIATE_DREG, e.Register)
	return appendValue(b, unix.NFTA_IMMEDIATE_DATA, e.Data)
}

// parseImmediate reads an immediate: a Verdict when it holds one, else an Immediate.
func parseImmediate(d *nlattr.Decoder) (Any, bool, error) {
	imm := &Immediate{}
	var verdict *Verdict
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_IMMEDIATE_DREG:
			imm.Register = d.Uint32()
		case unix.NFTA_IMMEDIATE_DATA:
			nd := d.Nested()
			for nd.Next() {
				switch nd.Type() {
				case unix.NFTA_DATA_VALUE:
					imm.Data = append([]byte(nil), nd.Bytes()...)
				case unix.NFTA_DATA_VERDICT:
					verdict = &Verdict{}
					vd := nd.Nested()
					for vd.Next() {
						switch vd.Type() {
						case unix.NFTA_VERDICT_CODE:
							verdict.Kind = VerdictKind(int32(vd.Uint32()))
						case unix.NFTA_VERDICT_CHAIN:
							verdict.Chain = vd.String()
						}
					}
					nd.Fail(vd.Err())
				}
			}
			d.Fail(nd.Err())
		}
	}
	if err := d.Err(); err != nil {
		return nil, false, err
	}
	if verdict != nil {
		return verdict, imm.Register == unix.NFT_REG_VERDICT, nil
	}
	return imm, true, nil
}

// Masq masquerades: the source address becomes the outgoing interface's.
type Masq struct {
	Random      bool
	FullyRandom bool
	Persistent  bool
	ToPorts     bool // RegProtoMin (and RegProtoMax) hold the port range
	RegProtoMin uint32
	RegProtoMax uint32
}

func (e *Masq) kind() string { return "masq" }

// appendData writes the flags and the port registers in the kernel's order. (google/nftables drops
// the flags of a masquerade to ports; the kernel takes both.)
func (e *Masq) appendData(b []byte) []byte {
	if f := rangeFlags(e.Random, e.FullyRandom, e.Persistent, false, false); f != 0 {
		b = nlattr.AppendUint32(b, unix.NFTA_MASQ_FLAGS, f)
	}
	if e.ToPorts {
		b = nlattr.AppendUint32(b, unix.NFTA_MASQ_REG_PROTO_MIN, e.RegProtoMin)
		if e.RegProtoMax != 0 {
			b = nlattr.AppendUint32(b, unix.NFTA_MASQ_REG_PROTO_MAX, e.RegProtoMax)
		}
	}
	return b
}

func parseMasq(d *nlattr.Decoder) (Any, bool, error) {
	e := &Masq{}
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_MASQ_REG_PROTO_MIN:
			e.ToPorts, e.RegProtoMin = true, d.Uint32()
		case unix.NFTA_MASQ_REG_PROTO_MAX:
			e.RegProtoMax = d.Uint32()
		case unix.NFTA_MASQ_FLAGS:
			f := d.Uint32()
			e.Random, e.FullyRandom, e.Persistent = f&unix.NF_NAT_RANGE_PROTO_RANDOM != 0,
				f&unix.NF_NAT_RANGE_PROTO_RANDOM_FULLY != 0, f&unix.NF_NAT_RANGE_PERSISTENT != 0
		}
	}
	if !e.ToPorts {
		e.RegProtoMax = 0 // the kernel reads a maximum only beside a minimum
	}
	return e, true, d.Err()
}

// rangeFlags are the NF_NAT_RANGE_* flags of a masq or nat expression.
func rangeFlags(random, fullyRandom, persistent, prefix, specified bool) uint32 {
	var f uint32
	for _, b := range []struct {
		on   bool
		flag uint32
	}{
		{random, unix.NF_NAT_RANGE_PROTO_RANDOM},
		{fullyRandom, unix.NF_NAT_RANGE_PROTO_RANDOM_FULLY},
		{persistent, unix.NF_NAT_RANGE_PERSISTENT},
		{prefix, unix.NF_NAT_RANGE_NETMAP},
		{specified, unix.NF_NAT_RANGE_PROTO_SPECIFIED},
	} {
		if b.on {
			f |= b.flag
		}
	}
	return f
}

// NATType is source or destination NAT (unix.NFT_NAT_*).
type NATType uint32

// The NAT types.
const (
	NATTypeSourceNAT NATType = unix.NFT_NAT_SNAT
	NATTypeDestNAT   NATType = unix.NFT_NAT_DNAT
)

// NAT translates to the address in RegAddrMin (..RegAddrMax) and the port in RegProtoMin
// (..RegProtoMax); a register 0 is not set. Family is the address family (unix.NFPROTO_*).
type NAT struct {
	Type        NATType
	Family      uint32
	RegAddrMin  uint32
	RegAddrMax  uint32
	RegProtoMin uint32
	RegProtoMax uint32
	Random      bool
	FullyRandom bool
	Persistent  bool
	Prefix      bool
	Specified   bool
}

func (e *NAT) kind() string { return "nat" }

func (e *NAT) appendData(b []byte) []byte {
	b = nlattr.AppendUint32(b, unix.NFTA_NAT_TYPE, uint32(e.Type))
	b = nlattr.AppendUint32(b, unix.NFTA_NAT_FAMILY, e.Family)
	if e.RegAddrMin != 0 {
		b = nlattr.AppendUint32(b, unix.NFTA_NAT_REG_ADDR_MIN, e.RegAddrMin)
		if e.RegAddrMax != 0 {
			b = nlattr.AppendUint32(b, unix.NFTA_NAT_REG_ADDR_MAX, e.RegAddrMax)
		}
	}
	if e.RegProtoMin != 0 {
		b = nlattr.AppendUint32(b, unix.NFTA_NAT_REG_PROTO_MIN, e.RegProtoMin)
		if e.RegProtoMax != 0 {
			b = nlattr.AppendUint32(b, unix.NFTA_NAT_REG_PROTO_MAX, e.RegProtoMax)
		}
	}
	if f := rangeFlags(e.Random, e.FullyRandom, e.Persistent, e.Prefix, e.Specified); f != 0 {
		b = nlattr.AppendUint32(b, unix.NFTA_NAT_FLAGS, f)
	}
	return b
}

func parseNAT(d *nlattr.Decoder) (Any, bool, error) {
	e := &NAT{}
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_NAT_TYPE:
			e.Type = NATType(d.Uint32())
		case unix.NFTA_NAT_FAMILY:
			e.Family = d.Uint32()
		case unix.NFTA_NAT_REG_ADDR_MIN:
			e.RegAddrMin = d.Uint32()
		case unix.NFTA_NAT_REG_ADDR_MAX:
			e.RegAddrMax = d.Uint32()
		case unix.NFTA_NAT_REG_PROTO_MIN:
			e.RegProtoMin = d.Uint32()
		case unix.NFTA_NAT_REG_PROTO_MAX:
			e.RegProtoMax = d.Uint32()
		case unix.NFTA_NAT_FLAGS:
			f := d.Uint32()
			e.Random, e.FullyRandom, e.Persistent = f&unix.NF_NAT_RANGE_PROTO_RANDOM != 0,
				f&unix.NF_NAT_RANGE_PROTO_RANDOM_FULLY != 0, f&unix.NF_NAT_RANGE_PERSISTENT != 0
			e.Prefix, e.Specified = f&unix.NF_NAT_RANGE_NETMAP != 0, f&unix.NF_NAT_RANGE_PROTO_SPECIFIED != 0
		}
	}
	// The kernel reads a maximum only beside a minimum, and register 0 is not a data register.
	if e.RegAddrMin == 0 {
		e.RegAddrMax = 0
	}
	if e.RegProtoMin == 0 {
		e.RegProtoMax = 0
	}
	return e, true, d.Err()
}

// Lookup looks SourceRegister up in the set SetName (or the set of this transaction with SetID); for
// a map, with IsDestRegSet, it loads the element's data into DestRegister. Invert matches a miss.
type Lookup struct {
	SourceRegister uint32
	DestRegister   uint32
	IsDestRegSet   bool
	SetID          uint32
	SetName        string
	Invert         bool
}

func (e *Lookup) kind() string { return "lookup" }

func (e *Lookup) appendData(b []byte) []byte {
	if e.SourceRegister != 0 {
		b = nlattr.AppendUint32(b, unix.NFTA_LOOKUP_SREG, e.SourceRegister)
	}
	if e.IsDestRegSet {
		b = nlattr.AppendUint32(b, unix.NFTA_LOOKUP_DREG, e.DestRegister)
	}
	if e.Invert {
		b = nlattr.AppendUint32(b, unix.NFTA_LOOKUP_FLAGS, unix.NFT_LOOKUP_F_INV)
	}
	b = nlattr.AppendString(b, unix.NFTA_LOOKUP_SET, e.SetName)
	return nlattr.AppendUint32(b, unix.NFTA_LOOKUP_SET_ID, e.SetID)
}

func parseLookup(d *nlattr.Decoder) (Any, bool, error) {
	e := &Lookup{}
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_LOOKUP_SET:
			e.SetName = d.String()
		case unix.NFTA_LOOKUP_SET_ID:
			e.SetID = d.Uint32()
		case unix.NFTA_LOOKUP_SREG:
			e.SourceRegister = d.Uint32()
		case unix.NFTA_LOOKUP_DREG:
			e.DestRegister, e.IsDestRegSet = d.Uint32(), true
		case unix.NFTA_LOOKUP_FLAGS:
			e.Invert = d.Uint32()&unix.NFT_LOOKUP_F_INV != 0
		}
	}
	return e, true, d.Err()
}

// CtKey is what a ct expression loads (unix.NFT_CT_*).
type CtKey uint32

// The conntrack keys netloom matches on, and those that take a direction.
const (
	CtKeySTATE    CtKey = unix.NFT_CT_STATE
	CtKeySTATUS   CtKey = unix.NFT_CT_STATUS
	CtKeySRC      CtKey = unix.NFT_CT_SRC
	CtKeyDST      CtKey = unix.NFT_CT_DST
	CtKeyPROTOSRC CtKey = unix.NFT_CT_PROTO_SRC
	CtKeyPROTODST CtKey = unix.NFT_CT_PROTO_DST
)

// Ct loads a conntrack key into Register (with SourceRegister: sets it from Register). Direction is
// the tuple (original 0, reply 1) of the addresses and ports.
type Ct struct {
	Register       uint32
	SourceRegister bool
	Key            CtKey
	Direction      uint32
}

func (e *Ct) kind() string { return "ct" }

func (e *Ct) appendData(b []byte) []byte {
	b = nlattr.AppendUint32(b, unix.NFTA_CT_KEY, uint32(e.Key))
	if e.SourceRegister {
		b = nlattr.AppendUint32(b, unix.NFTA_CT_SREG, e.Register)
	} else {
		b = nlattr.AppendUint32(b, unix.NFTA_CT_DREG, e.Register)
	}
	// The address and port keys need a direction, original (0) included; other keys (bytes, zone)
	// take one when it is set.
	switch e.Key {
	case CtKeySRC, CtKeyDST, CtKeyPROTOSRC, CtKeyPROTODST:
		b = nlattr.AppendUint32(b, unix.NFTA_CT_DIRECTION, e.Direction)
	default:
		if e.Direction != 0 {
			b = nlattr.AppendUint32(b, unix.NFTA_CT_DIRECTION, e.Direction)
		}
	}
	return b
}

func parseCt(d *nlattr.Decoder) (Any, bool, error) {
	e := &Ct{}
	ok := true
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_CT_KEY:
			e.Key = CtKey(d.Uint32())
		case unix.NFTA_CT_DREG:
			e.Register = d.Uint32()
		case unix.NFTA_CT_SREG:
			e.Register, e.SourceRegister = d.Uint32(), true
		case unix.NFTA_CT_DIRECTION:
			// A u8 in the kernel's dump; google/nftables and so the reference write a u32.
			switch v := d.Bytes(); len(v) {
			case 1:
				e.Direction = uint32(v[0])
			case 4:
				e.Direction = d.Uint32()
			default:
				ok = false
			}
		}
	}
	return e, ok, d.Err()
}

// Fib looks the packet up in the routing table and loads a result (ResultADDRTYPE: the address type,
// unix.RTN_*) into Register; the Flag fields say which of the packet's fields key the lookup.
type Fib struct {
	Register       uint32
	ResultOIF      bool
	ResultOIFNAME  bool
	ResultADDRTYPE bool
	FlagSADDR      bool
	FlagDADDR      bool
	FlagMARK       bool
	FlagIIF        bool
	FlagOIF        bool
	FlagPRESENT    bool
}

func (e *Fib) kind() string { return "fib" }

// fibFlags pairs each flag field with its NFTA_FIB_F_* bit.
func (e *Fib) fibFlags() []struct {
	on   *bool
	flag uint32
} {
	return []struct {
		on   *bool
		flag uint32
	}{
		{&e.FlagSADDR, unix.NFTA_FIB_F_SADDR}, {&e.FlagDADDR, unix.NFTA_FIB_F_DADDR},
		{&e.FlagMARK, unix.NFTA_FIB_F_MARK}, {&e.FlagIIF, unix.NFTA_FIB_F_IIF},
		{&e.FlagOIF, unix.NFTA_FIB_F_OIF}, {&e.FlagPRESENT, unix.NFTA_FIB_F_PRESENT},
	}
}

func (e *Fib) appendData(b []byte) []byte {
	b = nlattr.AppendUint32(b, unix.NFTA_FIB_DREG, e.Register)
	var flags uint32
	for _, f := range e.fibFlags() {
		if *f.on {
			flags |= f.flag
		}
	}
	if flags != 0 {
		b = nlattr.AppendUint32(b, unix.NFTA_FIB_FLAGS, flags)
	}
	var result uint32
	if e.ResultOIF {
		result |= unix.NFT_FIB_RESULT_OIF
	}
	if e.ResultOIFNAME {
		result |= unix.NFT_FIB_RESULT_OIFNAME
	}
	if e.ResultADDRTYPE {
		result |= unix.NFT_FIB_RESULT_ADDRTYPE
	}
	if result != 0 {
		b = nlattr.AppendUint32(b, unix.NFTA_FIB_RESULT, result)
	}
	return b
}

func parseFib(d *nlattr.Decoder) (Any, bool, error) {
	e := &Fib{}
	ok := true
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_FIB_DREG:
			e.Register = d.Uint32()
		case unix.NFTA_FIB_RESULT:
			// One result, not a set of flags: a repeated attribute replaces it.
			e.ResultOIF, e.ResultOIFNAME, e.ResultADDRTYPE = false, false, false
			switch d.Uint32() {
			case unix.NFT_FIB_RESULT_OIF:
				e.ResultOIF = true
			case unix.NFT_FIB_RESULT_OIFNAME:
				e.ResultOIFNAME = true
			case unix.NFT_FIB_RESULT_ADDRTYPE:
				e.ResultADDRTYPE = true
			default:
				ok = false
			}
		case unix.NFTA_FIB_FLAGS:
			flags := d.Uint32()
			for _, f := range e.fibFlags() {
				*f.on = flags&f.flag != 0
			}
		}
	}
	return e, ok, d.Err()
}

// Counter counts the packets and bytes that reach it. netloom writes none; rules of others have them.
type Counter struct {
	Bytes   uint64
	Packets uint64
}

func (e *Counter) kind() string { return "counter" }

func (e *Counter) appendData(b []byte) []byte {
	b = nlattr.AppendUint64(b, unix.NFTA_COUNTER_BYTES, e.Bytes)
	return nlattr.AppendUint64(b, unix.NFTA_COUNTER_PACKETS, e.Packets)
}

func parseCounter(d *nlattr.Decoder) (Any, bool, error) {
	e := &Counter{}
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_COUNTER_BYTES:
			e.Bytes = d.Uint64()
		case unix.NFTA_COUNTER_PACKETS:
			e.Packets = d.Uint64()
		}
	}
	return e, true, d.Err()
}

// Match is an xtables match run through the kernel's compat layer (nft_compat), which is how
// iptables-nft writes a match it has no native expression for (`-m comment`): Name and Rev name the
// xt match, Info is its xt_*_info structure as the kernel's x_tables module reads it.
type Match struct {
	Name string
	Rev  uint32
	Info []byte
}

func (e *Match) kind() string { return "match" }

func (e *Match) appendData(b []byte) []byte { return appendCompat(b, e.Name, e.Rev, e.Info) }

// Target is an xtables target run through the compat layer, as iptables-nft writes `-j MASQUERADE`:
// Name and Rev name the xt target, Info is its structure.
type Target struct {
	Name string
	Rev  uint32
	Info []byte
}

func (e *Target) kind() string { return "target" }

func (e *Target) appendData(b []byte) []byte { return appendCompat(b, e.Name, e.Rev, e.Info) }

// appendCompat writes a compat match's or target's attributes: NFTA_MATCH_NAME, _REV and _INFO have
// the numbers of NFTA_TARGET_NAME, _REV and _INFO.
func appendCompat(b []byte, name string, rev uint32, info []byte) []byte {
	b = nlattr.AppendString(b, unix.NFTA_MATCH_NAME, name)
	b = nlattr.AppendUint32(b, unix.NFTA_MATCH_REV, rev)
	return nlattr.Append(b, unix.NFTA_MATCH_INFO, info)
}

// parseCompat reads a compat match's or target's attributes.
func parseCompat(d *nlattr.Decoder) (name string, rev uint32, info []byte) {
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_MATCH_NAME:
			name = d.String()
		case unix.NFTA_MATCH_REV:
			rev = d.Uint32()
		case unix.NFTA_MATCH_INFO:
			info = bytes.Clone(d.Bytes())
		}
	}
	return name, rev, info
}

func parseMatch(d *nlattr.Decoder) (Any, bool, error) {
	e := &Match{}
	e.Name, e.Rev, e.Info = parseCompat(d)
	return e, true, d.Err()
}

func parseTarget(d *nlattr.Decoder) (Any, bool, error) {
	e := &Target{}
	e.Name, e.Rev, e.Info = parseCompat(d)
	return e, true, d.Err()
}
