package nftables

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
)

// This file speaks nfnetlink directly. google/nftables builds the rule expressions, but it cannot send
// a table comment, look up single set elements, or say which message of a batch failed, and this
// backend needs all three.

// nf_tables attributes and flags that golang.org/x/sys/unix does not define.
const (
	nftaTableUserdata  = 6 // NFTA_TABLE_USERDATA
	byteorderBigEndian = 2 // nftables' BYTEORDER_BIG_ENDIAN, in set user data
	nfAccept           = 1 // NF_ACCEPT, the base chains' policy
)

// recvTimeout bounds every wait for the kernel, so a lost reply fails an operation instead of hanging
// the plugin.
const recvTimeout = 30 * time.Second

// msg is one nf_tables request of a batch.
type msg struct {
	typ   uint16 // NFT_MSG_*
	flags uint16 // besides NLM_F_REQUEST and NLM_F_ACK
	attrs []byte
	what  string // for errors: "add elements to owner4"
}

// conn is a netlink socket of the calling thread's network namespace.
type conn struct {
	fd  int
	seq uint32
	buf []byte
}

func dial() (*conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("nf_tables netlink socket: %w", err)
	}
	c := &conn{fd: fd, seq: uint32(time.Now().UnixNano()), buf: make([]byte, 64<<10)}
	// An error reply then carries the failed request's header only, not its whole body.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		c.close()
		return nil, fmt.Errorf("nf_tables netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.close()
		return nil, fmt.Errorf("nf_tables netlink socket: %w", err)
	}
	return c, nil
}

func (c *conn) close() { _ = unix.Close(c.fd) }

func (c *conn) next() uint32 {
	c.seq++
	return c.seq
}

// appendMsg appends one netlink message with the nfnetlink header (family, version 0, resID).
func appendMsg(b []byte, typ, flags uint16, seq uint32, family byte, resID uint16, attrs []byte) []byte {
	n := unix.NLMSG_HDRLEN + 4 + len(attrs)
	b = binary.NativeEndian.AppendUint32(b, uint32(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, family, unix.NFNETLINK_V0)
	b = binary.BigEndian.AppendUint16(b, resID)
	b = append(b, attrs...)
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func nftType(t uint16) uint16 { return unix.NFNL_SUBSYS_NFTABLES<<8 | t }

func (c *conn) send(b []byte) error {
	for {
		err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// receive reads one datagram of replies.
func (c *conn) receive() ([]syscall.NetlinkMessage, error) {
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, unix.MSG_PEEK|unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive from nf_tables: %w", err)
		}
		if n > len(c.buf) {
			c.buf = make([]byte, n)
		}
		n, _, err = unix.Recvfrom(c.fd, c.buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive from nf_tables: %w", err)
		}
		return syscall.ParseNetlinkMessage(c.buf[:n])
	}
}

// errnoOf reads an NLMSG_ERROR (0: an acknowledgement) or the status of an NLMSG_DONE.
func errnoOf(m syscall.NetlinkMessage) error {
	if len(m.Data) < 4 {
		return nil
	}
	if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e != 0 {
		return unix.Errno(-e)
	}
	return nil
}

// transact sends msgs as one nf_tables transaction: the kernel applies all or none. It returns the
// error of the first message that failed, naming it, so callers can test it with errors.Is.
func (c *conn) transact(msgs []msg) error {
	if len(msgs) == 0 {
		return nil
	}
	begin := c.next()
	b := appendMsg(nil, unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, begin, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	pending := make(map[uint32]int, len(msgs))
	for i, m := range msgs {
		seq := c.next()
		pending[seq] = i
		b = appendMsg(b, nftType(m.typ), unix.NLM_F_REQUEST|unix.NLM_F_ACK|m.flags, seq, unix.NFPROTO_INET, 0, m.attrs)
	}
	b = appendMsg(b, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, c.next(), unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	if err := c.send(b); err != nil {
		return fmt.Errorf("send nf_tables transaction: %w", err)
	}
	var failed error
	failedAt := len(msgs)
	for len(pending) > 0 {
		replies, err := c.receive()
		if err != nil {
			return err
		}
		for _, r := range replies {
			if r.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			err := errnoOf(r)
			if r.Header.Seq == begin {
				// The batch as a whole was refused (no permission) or failed to commit.
				return fmt.Errorf("nf_tables transaction: %w", err)
			}
			i, ok := pending[r.Header.Seq]
			if !ok {
				continue
			}
			delete(pending, r.Header.Seq)
			if err != nil && i < failedAt {
				failed, failedAt = fmt.Errorf("%s: %w", msgs[i].what, err), i
			}
		}
	}
	return failed
}

// elemQuery asks for the element of set that holds key (for an interval map: the one whose range
// holds it).
type elemQuery struct {
	set string
	key []byte
}

// get looks up single elements, one request each, all sent at once: the cost depends on len(qs), not
// on the size of the maps. A missing element, or missing map, comes back as nil.
func (c *conn) get(qs []elemQuery) ([]*elem, error) {
	if len(qs) == 0 {
		return nil, nil
	}
	out := make([]*elem, len(qs))
	pending := make(map[uint32]int, len(qs))
	var b []byte
	for i, q := range qs {
		attrs, err := elemListAttrs(q.set, []elem{{key: q.key}}, false)
		if err != nil {
			return nil, err
		}
		seq := c.next()
		pending[seq] = i
		b = appendMsg(b, nftType(unix.NFT_MSG_GETSETELEM), unix.NLM_F_REQUEST, seq, unix.NFPROTO_INET, 0, attrs)
	}
	if err := c.send(b); err != nil {
		return nil, fmt.Errorf("send nf_tables lookups: %w", err)
	}
	for len(pending) > 0 {
		replies, err := c.receive()
		if err != nil {
			return nil, err
		}
		for _, r := range replies {
			i, ok := pending[r.Header.Seq]
			if !ok {
				continue
			}
			delete(pending, r.Header.Seq)
			switch r.Header.Type {
			case unix.NLMSG_ERROR:
				if err := errnoOf(r); err != nil && !errors.Is(err, unix.ENOENT) {
					return nil, fmt.Errorf("look up %s element: %w", qs[i].set, err)
				}
			case nftType(unix.NFT_MSG_NEWSETELEM):
				es, err := parseElems(r.Data)
				if err != nil {
					return nil, err
				}
				if len(es) > 0 {
					out[i] = &es[0]
				}
			}
		}
	}
	return out, nil
}

// dump runs one nf_tables dump request and returns the replies' bodies. A dump the kernel interrupted
// because the ruleset changed meanwhile is run again. A missing table or map reads as empty.
func (c *conn) dump(typ uint16, attrs []byte) ([][]byte, error) {
	// Every commit in the namespace (another pod's portmap, an iptables-nft masquerade) interrupts a
	// dump in flight: under heavy churn five back-to-back tries were not always enough (the soak saw one
	// ADD in ~2,000 fail so). Retry more, with a short randomised pause that lets the burst pass, and
	// give up with code 11 so the runtime retries the ADD.
	const attempts = 20
	for attempt := 1; ; attempt++ {
		seq := c.next()
		b := appendMsg(nil, nftType(typ), unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, unix.NFPROTO_INET, 0, attrs)
		if err := c.send(b); err != nil {
			return nil, fmt.Errorf("send nf_tables dump: %w", err)
		}
		var out [][]byte
		interrupted, done := false, false
		for !done {
			replies, err := c.receive()
			if err != nil {
				return nil, err
			}
			for _, r := range replies {
				if r.Header.Seq != seq {
					continue
				}
				if r.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
					interrupted = true
				}
				switch r.Header.Type {
				case unix.NLMSG_DONE, unix.NLMSG_ERROR:
					if err := errnoOf(r); err != nil {
						if errors.Is(err, unix.ENOENT) {
							return nil, nil
						}
						return nil, err
					}
					done = true
				default:
					// r.Data is in c.buf, which the next receive overwrites.
					out = append(out, bytes.Clone(r.Data))
				}
			}
		}
		if !interrupted {
			return out, nil
		}
		if attempt == attempts {
			return nil, conf.TryAgain("nf_tables dump interrupted %d times by concurrent changes; try again", attempts)
		}
		time.Sleep(time.Duration(attempt) * time.Duration(200+rand.IntN(800)) * time.Microsecond)
	}
}

// dumpSet returns every element of set.
func (c *conn) dumpSet(set string) ([]elem, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: cstr(TableName)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: cstr(set)},
	})
	if err != nil {
		return nil, err
	}
	bodies, err := c.dump(unix.NFT_MSG_GETSETELEM, attrs)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", set, err)
	}
	var out []elem
	for _, body := range bodies {
		es, err := parseElems(body)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

// listSets returns the names of the table's maps.
func (c *conn) listSets() ([]string, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: cstr(TableName)}})
	if err != nil {
		return nil, err
	}
	bodies, err := c.dump(unix.NFT_MSG_GETSET, attrs)
	if err != nil {
		return nil, fmt.Errorf("list the maps of %s: %w", TableName, err)
	}
	var out []string
	for _, body := range bodies {
		ad, err := netlink.NewAttributeDecoder(body[4:])
		if err != nil {
			return nil, err
		}
		var table, name string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_TABLE:
				table = ad.String()
			case unix.NFTA_SET_NAME:
				name = ad.String()
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
		if table == TableName {
			out = append(out, name)
		}
	}
	return out, nil
}

// installedRule is what Add needs to know of a rule of the table.
type installedRule struct {
	chain, comment string
}

// dumpRules lists the rules of the table in order, chain by chain.
func (c *conn) dumpRules() ([]installedRule, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: cstr(TableName)}})
	if err != nil {
		return nil, err
	}
	bodies, err := c.dump(unix.NFT_MSG_GETRULE, attrs)
	if err != nil {
		return nil, fmt.Errorf("list the rules of %s: %w", TableName, err)
	}
	var out []installedRule
	for _, body := range bodies {
		ad, err := netlink.NewAttributeDecoder(body[4:])
		if err != nil {
			return nil, err
		}
		var r installedRule
		var table string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				table = ad.String()
			case unix.NFTA_RULE_CHAIN:
				r.chain = ad.String()
			case unix.NFTA_RULE_USERDATA:
				r.comment, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
		if table == TableName {
			out = append(out, r)
		}
	}
	return out, nil
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// parseElems reads a NEWSETELEM message body.
func parseElems(body []byte) ([]elem, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("short nf_tables element message")
	}
	ad, err := netlink.NewAttributeDecoder(body[4:])
	if err != nil {
		return nil, err
	}
	var set string
	var out []elem
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_LIST_SET:
			set = ad.String()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					var e elem
					list.Nested(func(nad *netlink.AttributeDecoder) error {
						for nad.Next() {
							switch nad.Type() {
							case unix.NFTA_SET_ELEM_KEY:
								e.key = dataValue(nad.Bytes())
							case unix.NFTA_SET_ELEM_DATA:
								e.data = dataValue(nad.Bytes())
							case unix.NFTA_SET_ELEM_USERDATA:
								e.comment, _ = userdata.GetString(nad.Bytes(), userdata.NFTNL_UDATA_SET_ELEM_COMMENT)
							}
						}
						return nil
					})
					out = append(out, e)
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return nil, fmt.Errorf("parse nf_tables elements: %w", err)
	}
	for i := range out {
		out[i].set = set
	}
	return out, nil
}

// dataValue unwraps NFTA_DATA_VALUE.
func dataValue(b []byte) []byte {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_DATA_VALUE {
			return append([]byte(nil), ad.Bytes()...)
		}
	}
	return nil
}

func nestValue(typ uint16, v []byte) (netlink.Attribute, error) {
	b, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: v}})
	return netlink.Attribute{Type: unix.NLA_F_NESTED | typ, Data: b}, err
}

// elemListAttrs is the body of a NEWSETELEM, DELSETELEM or GETSETELEM message for es in set.
func elemListAttrs(set string, es []elem, withData bool) ([]byte, error) {
	var list []netlink.Attribute
	for _, e := range es {
		key, err := nestValue(unix.NFTA_SET_ELEM_KEY, e.key)
		if err != nil {
			return nil, err
		}
		item := []netlink.Attribute{key}
		if withData {
			data, err := nestValue(unix.NFTA_SET_ELEM_DATA, e.data)
			if err != nil {
				return nil, err
			}
			item = append(item, data)
		}
		if withData && e.comment != "" {
			item = append(item, netlink.Attribute{Type: unix.NFTA_SET_ELEM_USERDATA,
				Data: userdata.AppendString(nil, userdata.NFTNL_UDATA_SET_ELEM_COMMENT, e.comment)})
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
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: cstr(TableName)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: cstr(set)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: lb},
	})
}

// addElems adds es (all of one set). Without NLM_F_EXCL the kernel takes an element that exists with
// the same data as a no-op, and refuses (EEXIST) one whose key exists with other data.
func addElems(set string, es []elem) (msg, error) {
	attrs, err := elemListAttrs(set, es, true)
	return msg{typ: unix.NFT_MSG_NEWSETELEM, flags: unix.NLM_F_CREATE, attrs: attrs, what: "add elements to " + set}, err
}

// delElems deletes es (all of one set); it fails (ENOENT) when one is missing.
func delElems(set string, es []elem) (msg, error) {
	attrs, err := elemListAttrs(set, es, false)
	return msg{typ: unix.NFT_MSG_DELSETELEM, attrs: attrs, what: "delete elements from " + set}, err
}

func newTableMsg() (msg, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: cstr(TableName)},
		{Type: unix.NFTA_TABLE_FLAGS, Data: be32(0)},
		{Type: nftaTableUserdata, Data: userdata.AppendString(nil, userdata.TypeComment, tableComment)},
	})
	return msg{typ: unix.NFT_MSG_NEWTABLE, flags: unix.NLM_F_CREATE, attrs: attrs, what: "add table " + TableName}, err
}

func newChainMsg(ch chainDef) (msg, error) {
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: cstr(TableName)},
		{Type: unix.NFTA_CHAIN_NAME, Data: cstr(ch.name)},
	}
	if ch.hooked {
		hook, err := netlink.MarshalAttributes([]netlink.Attribute{
			{Type: unix.NFTA_HOOK_HOOKNUM, Data: be32(ch.hook)},
			{Type: unix.NFTA_HOOK_PRIORITY, Data: be32(uint32(ch.priority))},
		})
		if err != nil {
			return msg{}, err
		}
		attrs = append(attrs,
			netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_CHAIN_HOOK, Data: hook},
			netlink.Attribute{Type: unix.NFTA_CHAIN_POLICY, Data: be32(nfAccept)},
			netlink.Attribute{Type: unix.NFTA_CHAIN_TYPE, Data: cstr("nat")},
		)
	}
	b, err := netlink.MarshalAttributes(attrs)
	return msg{typ: unix.NFT_MSG_NEWCHAIN, flags: unix.NLM_F_CREATE, attrs: b, what: "add chain " + ch.name}, err
}

// flushChainMsg deletes every rule of chain.
func flushChainMsg(chain string) (msg, error) {
	b, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(TableName)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
	})
	return msg{typ: unix.NFT_MSG_DELRULE, attrs: b, what: "flush chain " + chain}, err
}

func newRuleMsg(r ruleDef) (msg, error) {
	var exprs []netlink.Attribute
	for _, e := range r.exprs {
		b, err := expr.Marshal(unix.NFPROTO_INET, e)
		if err != nil {
			return msg{}, fmt.Errorf("rule %q: %w", r.comment, err)
		}
		exprs = append(exprs, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
	}
	eb, err := netlink.MarshalAttributes(exprs)
	if err != nil {
		return msg{}, err
	}
	b, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(TableName)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(r.chain)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: eb},
		{Type: unix.NFTA_RULE_USERDATA, Data: userdata.AppendString(nil, userdata.TypeComment, r.comment)},
	})
	return msg{typ: unix.NFT_MSG_NEWRULE, flags: unix.NLM_F_CREATE | unix.NLM_F_APPEND, attrs: b,
		what: fmt.Sprintf("add rule %q to %s", r.comment, r.chain)}, err
}

// newSetMsg adds a map; adding one that exists with the same definition is a no-op.
func newSetMsg(s setDef, id uint32) (msg, error) {
	flags := uint32(unix.NFT_SET_MAP)
	key, data := concatType(s.key), concatType(s.data)
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_SET_TABLE, Data: cstr(TableName)},
		{Type: unix.NFTA_SET_NAME, Data: cstr(s.name)},
		{Type: unix.NFTA_SET_KEY_TYPE, Data: be32(key.GetNFTMagic())},
		{Type: unix.NFTA_SET_KEY_LEN, Data: be32(paddedLen(s.key))},
		{Type: unix.NFTA_SET_DATA_TYPE, Data: be32(data.GetNFTMagic())},
		{Type: unix.NFTA_SET_DATA_LEN, Data: be32(paddedLen(s.data))},
		{Type: unix.NFTA_SET_ID, Data: be32(id)},
	}
	attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_SET_FLAGS, Data: be32(flags)})
	ud := userdata.AppendUint32(nil, userdata.NFTNL_UDATA_SET_KEYBYTEORDER, byteorderBigEndian)
	ud = userdata.AppendUint32(ud, userdata.NFTNL_UDATA_SET_DATABYTEORDER, byteorderBigEndian)
	ud = userdata.AppendString(ud, userdata.NFTNL_UDATA_SET_COMMENT, s.comment)
	attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_SET_USERDATA, Data: ud})
	b, err := netlink.MarshalAttributes(attrs)
	return msg{typ: unix.NFT_MSG_NEWSET, flags: unix.NLM_F_CREATE, attrs: b, what: "add map " + s.name}, err
}
