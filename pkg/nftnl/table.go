package nftnl

import (
	"bytes"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/nftnl/expr"
	"github.com/netloom/netloom/pkg/nftnl/internal/nlattr"
)

// nf_tables attributes and values that golang.org/x/sys/unix does not define.
const (
	nftaTableUserdata  = 6 // NFTA_TABLE_USERDATA
	byteorderBigEndian = 2 // nftables' BYTEORDER_BIG_ENDIAN, in set user data
	nfAccept           = 1 // NF_ACCEPT, the base chains' policy
)

// Table names an nf_tables table. Its methods build the messages of a transaction on its objects.
type Table struct {
	Family byte // unix.NFPROTO_INET, ...
	Name   string
}

// Chain is a chain of a table, as written and as read back.
type Chain struct {
	Name string
	Hook *Hook // nil for a regular chain
}

// Hook makes a chain a base chain.
type Hook struct {
	Type     string // "nat", "filter", "route"
	Num      uint32 // unix.NF_INET_*
	Priority int32
}

// Kind renders what the chain hooks into, "regular" or "type nat hook 4 priority 100", so an installed
// chain compares with the one wanted as text.
func (ch Chain) Kind() string {
	if ch.Hook == nil {
		return "regular"
	}
	return fmt.Sprintf("type %s hook %d priority %d", ch.Hook.Type, ch.Hook.Num, ch.Hook.Priority)
}

// Rule is a rule of a table. Comment is nft's rule comment (user data). A rule to add has Exprs; a rule
// read back has the kernel's Handle, and its expressions are decoded only when Expressions asks for
// them: decoding is two thirds of the cost of listing a dozen rules, and portmap's ADD needs only their
// chains and comments.
type Rule struct {
	Chain   string
	Handle  uint64
	Comment string
	Exprs   []expr.Any

	exprs []byte // NFTA_RULE_EXPRESSIONS of the rule read back
}

// Expressions returns r's expressions: Exprs, or for a rule read back, its expressions decoded now.
func (r Rule) Expressions() ([]expr.Any, error) {
	if r.exprs == nil {
		return r.Exprs, nil
	}
	exprs, err := expr.ParseList(r.exprs)
	if err != nil {
		return nil, fmt.Errorf("rule %d of %s: %w", r.Handle, r.Chain, err)
	}
	return exprs, nil
}

// JumpsTo tells whether r ends in a jump to chain (an iptables-nft rule's `-j chain`). For a rule read
// back it decodes the expressions only when the chain's name is in them: on a chain of 1,000 rules
// decoding every rule would cost more than listing them.
func (r Rule) JumpsTo(chain string) bool {
	if r.exprs != nil && !bytes.Contains(r.exprs, append([]byte(chain), 0)) {
		return false
	}
	exprs, err := r.Expressions()
	if err != nil || len(exprs) == 0 {
		return false
	}
	v, ok := exprs[len(exprs)-1].(*expr.Verdict)
	return ok && v.Kind == expr.VerdictJump && v.Chain == chain
}

// Set is a named set, or a map when DataLen is set. Types are nft's datatype numbers (for a
// concatenation, nft's combined number), lengths in bytes with each concatenated field padded to 4.
// Keys and data are big-endian, as nft takes addresses, ports and protocols.
type Set struct {
	Name              string
	KeyType, KeyLen   uint32
	DataType, DataLen uint32
	ID                uint32 // NFTA_SET_ID: unique among the sets of one transaction
	Comment           string
	// Timeout, when set, makes the set one whose elements expire (NFT_SET_TIMEOUT), each after Timeout
	// unless it says otherwise: its elements can then be retired (Elem.Expiration) instead of deleted.
	Timeout time.Duration
}

// Elem is an element of a set: Data is empty in a set, set in a map.
type Elem struct {
	Key, Data []byte
	Comment   string
	// Expiration is how long the element has left, in a set with a timeout: read back, what the kernel
	// says (with Expires); added, a new expiration for an element that exists (kernels 6.10 and later:
	// ExpiryUpdates), which is how RetireElems works. Milliseconds count; zero adds none.
	Expiration time.Duration
	// Expires says, of an element read back, that it has an expiration: Expiration is then what is left,
	// 0 once it has passed (an expired element the kernel has not freed yet, which a listing may still
	// return).
	Expires bool
}

// Add adds the table, with comment unless it is empty; adding one that exists changes nothing (the
// kernel keeps the comment it has).
func (t Table) Add(comment string) (Msg, error) {
	a := nlattr.AppendString(nil, unix.NFTA_TABLE_NAME, t.Name)
	a = nlattr.AppendUint32(a, unix.NFTA_TABLE_FLAGS, 0)
	if comment != "" {
		a = nlattr.Append(a, nftaTableUserdata, appendUdataString(nil, udataComment, comment))
	}
	return t.msg(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, "add table "+t.Name, a), nil
}

// Del deletes the table and everything in it; it fails (ENOENT) when the table is missing. Preceded by
// Add in the same transaction it cannot fail so: that is how a transaction replaces a table whole
// (add, delete, add again with the new content) on kernels without NFT_MSG_DESTROYTABLE (before 6.3).
func (t Table) Del() (Msg, error) {
	a := nlattr.AppendString(nil, unix.NFTA_TABLE_NAME, t.Name)
	return t.msg(unix.NFT_MSG_DELTABLE, 0, "delete table "+t.Name, a), nil
}

// AddChain adds ch, a base chain with policy accept when it has a hook; adding one that exists with
// the same hook changes nothing.
func (t Table) AddChain(ch Chain) (Msg, error) {
	a := t.chainAttrs(ch.Name)
	if h := ch.Hook; h != nil {
		hook := nlattr.AppendUint32(nil, unix.NFTA_HOOK_HOOKNUM, h.Num)
		hook = nlattr.AppendUint32(hook, unix.NFTA_HOOK_PRIORITY, uint32(h.Priority))
		a = nlattr.AppendNested(a, unix.NFTA_CHAIN_HOOK, hook)
		a = nlattr.AppendUint32(a, unix.NFTA_CHAIN_POLICY, nfAccept)
		a = nlattr.AppendString(a, unix.NFTA_CHAIN_TYPE, h.Type)
	}
	return t.msg(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, "add chain "+ch.Name, a), nil
}

// CreateChain adds the regular chain name; it fails (EEXIST) when the chain exists.
func (t Table) CreateChain(name string) (Msg, error) {
	return t.msg(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE|unix.NLM_F_EXCL, "create chain "+name, t.chainAttrs(name)), nil
}

// DelChain deletes chain, which must hold no rules and no jumps to it; it fails (ENOENT) when the
// chain is gone.
func (t Table) DelChain(chain string) (Msg, error) {
	return t.msg(unix.NFT_MSG_DELCHAIN, 0, "delete chain "+chain, t.chainAttrs(chain)), nil
}

// chainAttrs name a chain of t.
func (t Table) chainAttrs(chain string) []byte {
	a := nlattr.AppendString(nil, unix.NFTA_CHAIN_TABLE, t.Name)
	return nlattr.AppendString(a, unix.NFTA_CHAIN_NAME, chain)
}

// ruleAttrs name chain of t, as the rule messages do.
func (t Table) ruleAttrs(chain string) []byte {
	a := nlattr.AppendString(nil, unix.NFTA_RULE_TABLE, t.Name)
	return nlattr.AppendString(a, unix.NFTA_RULE_CHAIN, chain)
}

// FlushChain deletes every rule of chain.
func (t Table) FlushChain(chain string) (Msg, error) {
	return t.msg(unix.NFT_MSG_DELRULE, 0, "flush chain "+chain, t.ruleAttrs(chain)), nil
}

// AddRule appends r (its chain, expressions and comment; the handle is the kernel's) to its chain.
func (t Table) AddRule(r Rule) (Msg, error) {
	a := t.ruleAttrs(r.Chain)
	a = nlattr.AppendNested(a, unix.NFTA_RULE_EXPRESSIONS, expr.AppendList(nil, r.Exprs))
	if r.Comment != "" {
		a = nlattr.Append(a, unix.NFTA_RULE_USERDATA, appendUdataString(nil, udataComment, r.Comment))
	}
	return t.msg(unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND, fmt.Sprintf("add rule %q to %s", r.Comment, r.Chain), a), nil
}

// DelRule deletes the rule of chain with handle; it fails (ENOENT) when the rule is gone.
func (t Table) DelRule(chain string, handle uint64) (Msg, error) {
	a := nlattr.AppendUint64(t.ruleAttrs(chain), unix.NFTA_RULE_HANDLE, handle)
	return t.msg(unix.NFT_MSG_DELRULE, 0, fmt.Sprintf("delete rule %d of %s", handle, chain), a), nil
}

// AddSet adds s; adding one that exists with the same definition changes nothing.
func (t Table) AddSet(s Set) (Msg, error) {
	var flags uint32
	a := nlattr.AppendString(nil, unix.NFTA_SET_TABLE, t.Name)
	a = nlattr.AppendString(a, unix.NFTA_SET_NAME, s.Name)
	a = nlattr.AppendUint32(a, unix.NFTA_SET_KEY_TYPE, s.KeyType)
	a = nlattr.AppendUint32(a, unix.NFTA_SET_KEY_LEN, s.KeyLen)
	ud := appendUdataUint32(nil, udataSetKeyByteorder, byteorderBigEndian)
	if s.DataLen > 0 {
		flags |= unix.NFT_SET_MAP
		a = nlattr.AppendUint32(a, unix.NFTA_SET_DATA_TYPE, s.DataType)
		a = nlattr.AppendUint32(a, unix.NFTA_SET_DATA_LEN, s.DataLen)
		ud = appendUdataUint32(ud, udataSetDataByteorder, byteorderBigEndian)
	}
	if s.Comment != "" {
		ud = appendUdataString(ud, udataSetComment, s.Comment)
	}
	if s.Timeout > 0 {
		flags |= unix.NFT_SET_TIMEOUT
		a = nlattr.AppendUint64(a, unix.NFTA_SET_TIMEOUT, uint64(s.Timeout.Milliseconds()))
	}
	a = nlattr.AppendUint32(a, unix.NFTA_SET_ID, s.ID)
	a = nlattr.AppendUint32(a, unix.NFTA_SET_FLAGS, flags)
	a = nlattr.Append(a, unix.NFTA_SET_USERDATA, ud)
	return t.msg(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE, "add set "+s.Name, a), nil
}

// AddElems adds es to set. Without NLM_F_EXCL the kernel takes an element that exists with the same
// data as a no-op, and refuses (EEXIST) one whose key exists with other data.
func (t Table) AddElems(set string, es []Elem) (Msg, error) {
	return Msg{Type: unix.NFT_MSG_NEWSETELEM, Flags: unix.NLM_F_CREATE, Family: t.Family,
		Attrs: t.elemList(set, es, true), What: "add elements to " + set}, nil
}

// RetireElems makes es, elements of set as they were read (the same data), expire after the shortest
// time the kernel counts, instead of deleting them: a set with a timeout (Set.Timeout) on a kernel with
// ExpiryUpdates. An element whose data changed meanwhile fails the transaction (EEXIST), one that is
// gone is added back to expire at once. An expired element no longer matches a packet, a lookup or a
// listing, and adding its key again succeeds; the kernel frees it later, in the set's garbage
// collection. Unlike a deletion, a transaction of retirements leaves nothing for the kernel to free
// after a grace period, so closing its socket does not wait for one (see Conn.Close).
func (t Table) RetireElems(set string, es []Elem) (Msg, error) {
	retired := make([]Elem, len(es))
	for i, e := range es {
		e.Expiration = time.Millisecond
		retired[i] = e
	}
	return Msg{Type: unix.NFT_MSG_NEWSETELEM, Flags: unix.NLM_F_CREATE, Family: t.Family,
		Attrs: t.elemList(set, retired, true), What: "retire elements of " + set}, nil
}

// DelElems deletes es (their keys) from set; it fails (ENOENT) when one is missing.
func (t Table) DelElems(set string, es []Elem) (Msg, error) {
	return Msg{Type: unix.NFT_MSG_DELSETELEM, Family: t.Family, Attrs: t.elemList(set, es, false),
		What: "delete elements from " + set}, nil
}

func (t Table) msg(typ, flags uint16, what string, attrs []byte) Msg {
	return Msg{Type: typ, Flags: flags, Family: t.Family, Attrs: attrs, What: what}
}

// appendValue appends v wrapped in NFTA_DATA_VALUE inside an attribute of type typ.
func appendValue(b []byte, typ uint16, v []byte) []byte {
	return nlattr.AppendNested(b, typ, nlattr.Append(nil, unix.NFTA_DATA_VALUE, v))
}

// elemList is the body of a NEWSETELEM (withData: data and comments too), DELSETELEM or GETSETELEM
// message for es in set.
func (t Table) elemList(set string, es []Elem, withData bool) []byte {
	var list []byte
	for _, e := range es {
		item := appendValue(nil, unix.NFTA_SET_ELEM_KEY, e.Key)
		if withData && len(e.Data) > 0 {
			item = appendValue(item, unix.NFTA_SET_ELEM_DATA, e.Data)
		}
		if withData && e.Expiration > 0 {
			item = nlattr.AppendUint64(item, unix.NFTA_SET_ELEM_EXPIRATION, uint64(max(e.Expiration.Milliseconds(), 1)))
		}
		if withData && e.Comment != "" {
			item = nlattr.Append(item, unix.NFTA_SET_ELEM_USERDATA, appendUdataString(nil, udataSetElemComment, e.Comment))
		}
		list = nlattr.AppendNested(list, unix.NFTA_LIST_ELEM, item)
	}
	a := nlattr.AppendString(nil, unix.NFTA_SET_ELEM_LIST_TABLE, t.Name)
	a = nlattr.AppendString(a, unix.NFTA_SET_ELEM_LIST_SET, set)
	return nlattr.AppendNested(a, unix.NFTA_SET_ELEM_LIST_ELEMENTS, list)
}

// ChainProblem compares the chain want with the installed chains: it says that want is missing, or
// that it hooks elsewhere, or returns "" when it is there as wanted. found tells whether a chain of
// that name exists.
func (t Table) ChainProblem(installed []Chain, want Chain) (problem string, found bool) {
	for _, ch := range installed {
		if ch.Name != want.Name {
			continue
		}
		if got, exp := ch.Kind(), want.Kind(); got != exp {
			return fmt.Sprintf("chain %s %s is %q, want %q", t.Name, want.Name, got, exp), true
		}
		return "", true
	}
	return fmt.Sprintf("chain %s %s is missing", t.Name, want.Name), false
}

// Datatype is one of nft's set key and data types, by nft's number.
type Datatype uint32

// The datatypes netloom's sets hold.
const (
	TypeIPAddr      Datatype = 7  // ipv4_addr
	TypeIP6Addr     Datatype = 8  // ipv6_addr
	TypeInetProto   Datatype = 12 // inet_proto
	TypeInetService Datatype = 13 // inet_service
)

// String is nft's name of the type, as `nft list` prints it.
func (t Datatype) String() string {
	switch t {
	case TypeIPAddr:
		return "ipv4_addr"
	case TypeIP6Addr:
		return "ipv6_addr"
	case TypeInetProto:
		return "inet_proto"
	case TypeInetService:
		return "inet_service"
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// Len is the size of a value of the type, in bytes.
func (t Datatype) Len() uint32 {
	switch t {
	case TypeIPAddr:
		return 4
	case TypeIP6Addr:
		return 16
	case TypeInetProto:
		return 1
	case TypeInetService:
		return 2
	}
	return 0
}

// concatTypeBits is how many bits of nft's combined type number each concatenated type takes.
const concatTypeBits = 6

// regSize is the width of an nf_tables register: every field of a concatenation starts on one.
const regSize = 4

// Concat is the concatenation of ts (one type: that type) as a set's key or data: nft's combined type
// number, and the length in bytes with each field padded to a register.
func Concat(ts ...Datatype) (typ, length uint32) {
	for _, t := range ts {
		typ = typ<<concatTypeBits | uint32(t)&(1<<concatTypeBits-1)
		length += (t.Len() + regSize - 1) / regSize * regSize
	}
	return typ, length
}
