package nftnl

import (
	"bytes"
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
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

	family byte   // of the rule read back
	exprs  []byte // NFTA_RULE_EXPRESSIONS of the rule read back
}

// Expressions returns r's expressions: Exprs, or for a rule read back, its expressions decoded now.
func (r Rule) Expressions() ([]expr.Any, error) {
	if r.exprs == nil {
		return r.Exprs, nil
	}
	exprs, err := parseExprs(r.family, r.exprs)
	if err != nil {
		return nil, fmt.Errorf("rule %d of %s: %w", r.Handle, r.Chain, err)
	}
	return exprs, nil
}

// JumpsTo tells whether r ends in a jump to chain (an iptables-nft rule's `-j chain`). For a rule read
// back it decodes the expressions only when the chain's name is in them: on a chain of 1,000 rules
// decoding every rule would cost more than listing them.
func (r Rule) JumpsTo(chain string) bool {
	if r.exprs != nil && !bytes.Contains(r.exprs, cstr(chain)) {
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
}

// Elem is an element of a set: Data is empty in a set, set in a map.
type Elem struct {
	Key, Data []byte
	Comment   string
}

// Add adds the table, with comment unless it is empty; adding one that exists changes nothing (the
// kernel keeps the comment it has).
func (t Table) Add(comment string) (Msg, error) {
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: cstr(t.Name)},
		{Type: unix.NFTA_TABLE_FLAGS, Data: be32(0)},
	}
	if comment != "" {
		attrs = append(attrs, netlink.Attribute{Type: nftaTableUserdata, Data: userdata.AppendString(nil, userdata.TypeComment, comment)})
	}
	return t.msg(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, "add table "+t.Name, attrs)
}

// Del deletes the table and everything in it; it fails (ENOENT) when the table is missing. Preceded by
// Add in the same transaction it cannot fail so: that is how a transaction replaces a table whole
// (add, delete, add again with the new content) on kernels without NFT_MSG_DESTROYTABLE (before 6.3).
func (t Table) Del() (Msg, error) {
	return t.msg(unix.NFT_MSG_DELTABLE, 0, "delete table "+t.Name, []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: cstr(t.Name)},
	})
}

// AddChain adds ch, a base chain with policy accept when it has a hook; adding one that exists with
// the same hook changes nothing.
func (t Table) AddChain(ch Chain) (Msg, error) {
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_CHAIN_NAME, Data: cstr(ch.Name)},
	}
	if h := ch.Hook; h != nil {
		hook, err := netlink.MarshalAttributes([]netlink.Attribute{
			{Type: unix.NFTA_HOOK_HOOKNUM, Data: be32(h.Num)},
			{Type: unix.NFTA_HOOK_PRIORITY, Data: be32(uint32(h.Priority))},
		})
		if err != nil {
			return Msg{}, err
		}
		attrs = append(attrs,
			netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_CHAIN_HOOK, Data: hook},
			netlink.Attribute{Type: unix.NFTA_CHAIN_POLICY, Data: be32(nfAccept)},
			netlink.Attribute{Type: unix.NFTA_CHAIN_TYPE, Data: cstr(h.Type)},
		)
	}
	return t.msg(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, "add chain "+ch.Name, attrs)
}

// DelChain deletes chain, which must hold no rules and no jumps to it; it fails (ENOENT) when the
// chain is gone.
func (t Table) DelChain(chain string) (Msg, error) {
	return t.msg(unix.NFT_MSG_DELCHAIN, 0, "delete chain "+chain, []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_CHAIN_NAME, Data: cstr(chain)},
	})
}

// FlushChain deletes every rule of chain.
func (t Table) FlushChain(chain string) (Msg, error) {
	return t.msg(unix.NFT_MSG_DELRULE, 0, "flush chain "+chain, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
	})
}

// AddRule appends r (its chain, expressions and comment; the handle is the kernel's) to its chain.
func (t Table) AddRule(r Rule) (Msg, error) {
	list := make([]netlink.Attribute, 0, len(r.Exprs))
	for _, e := range r.Exprs {
		b, err := expr.Marshal(t.Family, e)
		if err != nil {
			return Msg{}, fmt.Errorf("rule %q in %s: %w", r.Comment, r.Chain, err)
		}
		list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
	}
	exprs, err := netlink.MarshalAttributes(list)
	if err != nil {
		return Msg{}, err
	}
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(r.Chain)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: exprs},
	}
	if r.Comment != "" {
		attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_RULE_USERDATA, Data: userdata.AppendString(nil, userdata.TypeComment, r.Comment)})
	}
	return t.msg(unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND, fmt.Sprintf("add rule %q to %s", r.Comment, r.Chain), attrs)
}

// DelRule deletes the rule of chain with handle; it fails (ENOENT) when the rule is gone.
func (t Table) DelRule(chain string, handle uint64) (Msg, error) {
	return t.msg(unix.NFT_MSG_DELRULE, 0, fmt.Sprintf("delete rule %d of %s", handle, chain), []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
		{Type: unix.NFTA_RULE_HANDLE, Data: be64(handle)},
	})
}

// AddSet adds s; adding one that exists with the same definition changes nothing.
func (t Table) AddSet(s Set) (Msg, error) {
	var flags uint32
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_SET_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_SET_NAME, Data: cstr(s.Name)},
		{Type: unix.NFTA_SET_KEY_TYPE, Data: be32(s.KeyType)},
		{Type: unix.NFTA_SET_KEY_LEN, Data: be32(s.KeyLen)},
	}
	ud := userdata.AppendUint32(nil, userdata.NFTNL_UDATA_SET_KEYBYTEORDER, byteorderBigEndian)
	if s.DataLen > 0 {
		flags |= unix.NFT_SET_MAP
		attrs = append(attrs,
			netlink.Attribute{Type: unix.NFTA_SET_DATA_TYPE, Data: be32(s.DataType)},
			netlink.Attribute{Type: unix.NFTA_SET_DATA_LEN, Data: be32(s.DataLen)},
		)
		ud = userdata.AppendUint32(ud, userdata.NFTNL_UDATA_SET_DATABYTEORDER, byteorderBigEndian)
	}
	if s.Comment != "" {
		ud = userdata.AppendString(ud, userdata.NFTNL_UDATA_SET_COMMENT, s.Comment)
	}
	attrs = append(attrs,
		netlink.Attribute{Type: unix.NFTA_SET_ID, Data: be32(s.ID)},
		netlink.Attribute{Type: unix.NFTA_SET_FLAGS, Data: be32(flags)},
		netlink.Attribute{Type: unix.NFTA_SET_USERDATA, Data: ud},
	)
	return t.msg(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE, "add set "+s.Name, attrs)
}

// AddElems adds es to set. Without NLM_F_EXCL the kernel takes an element that exists with the same
// data as a no-op, and refuses (EEXIST) one whose key exists with other data.
func (t Table) AddElems(set string, es []Elem) (Msg, error) {
	attrs, err := t.elemList(set, es, true)
	return Msg{Type: unix.NFT_MSG_NEWSETELEM, Flags: unix.NLM_F_CREATE, Family: t.Family, Attrs: attrs, What: "add elements to " + set}, err
}

// DelElems deletes es (their keys) from set; it fails (ENOENT) when one is missing.
func (t Table) DelElems(set string, es []Elem) (Msg, error) {
	attrs, err := t.elemList(set, es, false)
	return Msg{Type: unix.NFT_MSG_DELSETELEM, Family: t.Family, Attrs: attrs, What: "delete elements from " + set}, err
}

func (t Table) msg(typ, flags uint16, what string, attrs []netlink.Attribute) (Msg, error) {
	b, err := netlink.MarshalAttributes(attrs)
	return Msg{Type: typ, Flags: flags, Family: t.Family, Attrs: b, What: what}, err
}

// nestValue wraps v in NFTA_DATA_VALUE inside an attribute of type typ.
func nestValue(typ uint16, v []byte) (netlink.Attribute, error) {
	b, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: v}})
	return netlink.Attribute{Type: unix.NLA_F_NESTED | typ, Data: b}, err
}

// elemList is the body of a NEWSETELEM (withData: data and comments too), DELSETELEM or GETSETELEM
// message for es in set.
func (t Table) elemList(set string, es []Elem, withData bool) ([]byte, error) {
	list := make([]netlink.Attribute, 0, len(es))
	for _, e := range es {
		key, err := nestValue(unix.NFTA_SET_ELEM_KEY, e.Key)
		if err != nil {
			return nil, err
		}
		item := []netlink.Attribute{key}
		if withData && len(e.Data) > 0 {
			data, err := nestValue(unix.NFTA_SET_ELEM_DATA, e.Data)
			if err != nil {
				return nil, err
			}
			item = append(item, data)
		}
		if withData && e.Comment != "" {
			item = append(item, netlink.Attribute{Type: unix.NFTA_SET_ELEM_USERDATA,
				Data: userdata.AppendString(nil, userdata.NFTNL_UDATA_SET_ELEM_COMMENT, e.Comment)})
		}
		b, err := netlink.MarshalAttributes(item)
		if err != nil {
			return nil, err
		}
		list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
	}
	lb, err := netlink.MarshalAttributes(list)
	if err != nil {
		return nil, err
	}
	return netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: cstr(t.Name)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: cstr(set)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: lb},
	})
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
