package nftnl

import (
	"bytes"
	"encoding/binary"
)

// nft's user data: type-length-value records (one byte each for type and length) that the kernel
// stores without reading, where nft keeps comments and a set's byte orders.

// User data types: each object kind numbers its own.
const (
	udataComment          = 0 // of a table (NFTNL_UDATA_TABLE_COMMENT) or a rule (NFTNL_UDATA_RULE_COMMENT)
	udataSetKeyByteorder  = 0 // NFTNL_UDATA_SET_KEYBYTEORDER
	udataSetDataByteorder = 1 // NFTNL_UDATA_SET_DATABYTEORDER
	udataSetComment       = 7 // NFTNL_UDATA_SET_COMMENT
	udataSetElemComment   = 0 // NFTNL_UDATA_SET_ELEM_COMMENT
)

// udataMax is the longest value a record holds.
const udataMax = 255

// appendUdata appends one record; a value longer than a record holds is cut.
func appendUdata(b []byte, typ byte, v []byte) []byte {
	v = v[:min(len(v), udataMax)]
	b = append(b, typ, byte(len(v)))
	return append(b, v...)
}

// appendUdataString appends s, NUL-terminated as nft writes it.
func appendUdataString(b []byte, typ byte, s string) []byte {
	return appendUdata(b, typ, append([]byte(s), 0))
}

// appendUdataUint32 appends v in host byte order, as nft writes numbers there.
func appendUdataUint32(b []byte, typ byte, v uint32) []byte {
	return appendUdata(b, typ, binary.NativeEndian.AppendUint32(nil, v))
}

// udataString finds the record of type typ and reads it as a string; "" when there is none or the
// records are cut short.
func udataString(b []byte, typ byte) string {
	for len(b) >= 2 {
		t, n := b[0], int(b[1])
		if len(b) < 2+n {
			return ""
		}
		if t == typ {
			v, _ := bytes.CutSuffix(b[2:2+n], []byte{0})
			return string(v)
		}
		b = b[2+n:]
	}
	return ""
}
