package nftnl

import (
	"encoding/binary"
	"syscall"

	"golang.org/x/sys/unix"
)

// Msg is one nf_tables request of a transaction.
type Msg struct {
	Type   uint16 // unix.NFT_MSG_*
	Flags  uint16 // besides NLM_F_REQUEST and NLM_F_ACK
	Family byte   // the table's family (unix.NFPROTO_*)
	Attrs  []byte
	What   string // names the request in errors: "add elements to owner4"
}

// appendMsg appends one netlink message with the nfnetlink header (family, version 0, resID).
func appendMsg(b []byte, typ, flags uint16, seq uint32, family byte, resID uint16, attrs []byte) []byte {
	n := unix.NLMSG_HDRLEN + nfgenmsgLen + len(attrs)
	b = binary.NativeEndian.AppendUint32(b, uint32(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port ID: the kernel
	b = append(b, family, unix.NFNETLINK_V0)
	b = binary.BigEndian.AppendUint16(b, resID)
	b = append(b, attrs...)
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// nfgenmsgLen is the size of the nfnetlink header that starts every message body.
const nfgenmsgLen = 4

// nftType is the netlink message type of an NFT_MSG_* request or reply.
func nftType(t uint16) uint16 { return unix.NFNL_SUBSYS_NFTABLES<<8 | t }

// batch frames msgs as one transaction: BATCH_BEGIN, each message with its own sequence number
// (first+1, first+2, ...) and NLM_F_ACK, BATCH_END. BATCH_BEGIN has sequence number first.
func batch(msgs []Msg, first uint32) []byte {
	seq := first
	b := appendMsg(nil, unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, seq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	for _, m := range msgs {
		seq++
		b = appendMsg(b, nftType(m.Type), unix.NLM_F_REQUEST|unix.NLM_F_ACK|m.Flags, seq, m.Family, 0, m.Attrs)
	}
	seq++
	return appendMsg(b, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, seq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
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

// body is a reply's attributes, after the nfnetlink header.
func body(data []byte) []byte {
	if len(data) < nfgenmsgLen {
		return nil
	}
	return data[nfgenmsgLen:]
}

// Batch collects the messages of a transaction as they are built; the first error of an encoder
// sticks, so a caller checks once, in Msgs.
type Batch struct {
	msgs []Msg
	err  error
}

// Add appends m, or records err.
func (b *Batch) Add(m Msg, err error) {
	if b.err != nil {
		return
	}
	if err != nil {
		b.err = err
		return
	}
	b.msgs = append(b.msgs, m)
}

// Msgs returns the messages, or the first error.
func (b *Batch) Msgs() ([]Msg, error) {
	if b.err != nil {
		return nil, b.err
	}
	return b.msgs, nil
}
