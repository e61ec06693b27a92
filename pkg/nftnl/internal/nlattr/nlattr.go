// Package nlattr encodes and decodes netlink attributes as nf_tables uses them: a 4-byte header
// (length, type), the payload padded to 4 bytes, numbers big-endian. It is the one place pkg/nftnl and
// its expression codec frame attributes.
package nlattr

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// typeMask clears the nested and byte-order flags of an attribute type.
const typeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)

// Append appends one attribute of type typ holding data, padded to 4 bytes.
func Append(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.NLA_HDRLEN+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// AppendNested appends an attribute of type typ, flagged nested, holding the attributes nested.
func AppendNested(b []byte, typ uint16, nested []byte) []byte {
	return Append(b, unix.NLA_F_NESTED|typ, nested)
}

// AppendUint32 appends a big-endian 32-bit number.
func AppendUint32(b []byte, typ uint16, v uint32) []byte {
	return Append(b, typ, binary.BigEndian.AppendUint32(nil, v))
}

// AppendUint64 appends a big-endian 64-bit number.
func AppendUint64(b []byte, typ uint16, v uint64) []byte {
	return Append(b, typ, binary.BigEndian.AppendUint64(nil, v))
}

// AppendString appends s, NUL-terminated.
func AppendString(b []byte, typ uint16, s string) []byte {
	return Append(b, typ, append([]byte(s), 0))
}

// Decoder walks the attributes of a buffer: for d.Next() { switch d.Type() ... }; then d.Err().
// A malformed attribute, or a number of the wrong size, stops the walk and sets the error. Payloads
// alias the buffer.
type Decoder struct {
	b    []byte
	typ  uint16
	data []byte
	err  error
}

// NewDecoder returns a decoder of the attributes in b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Next moves to the next attribute; false at the end or on an error.
func (d *Decoder) Next() bool {
	if d.err != nil || len(d.b) == 0 {
		return false
	}
	if len(d.b) < unix.NLA_HDRLEN {
		d.err = fmt.Errorf("netlink attribute: %d trailing bytes, less than a header", len(d.b))
		return false
	}
	n := int(binary.NativeEndian.Uint16(d.b))
	if n < unix.NLA_HDRLEN || n > len(d.b) {
		d.err = fmt.Errorf("netlink attribute of length %d in %d bytes", n, len(d.b))
		return false
	}
	d.typ = binary.NativeEndian.Uint16(d.b[2:]) & typeMask
	d.data = d.b[unix.NLA_HDRLEN:n]
	next := (n + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
	d.b = d.b[min(next, len(d.b)):]
	return true
}

// Type is the current attribute's type, without the nested and byte-order flags.
func (d *Decoder) Type() uint16 { return d.typ }

// Bytes is the current attribute's payload (aliasing the buffer).
func (d *Decoder) Bytes() []byte { return d.data }

// Uint32 reads the current attribute as a big-endian 32-bit number.
func (d *Decoder) Uint32() uint32 {
	if len(d.data) != 4 {
		d.fail(4)
		return 0
	}
	return binary.BigEndian.Uint32(d.data)
}

// Uint64 reads the current attribute as a big-endian 64-bit number.
func (d *Decoder) Uint64() uint64 {
	if len(d.data) != 8 {
		d.fail(8)
		return 0
	}
	return binary.BigEndian.Uint64(d.data)
}

// String reads the current attribute as a string, without its terminating NUL.
func (d *Decoder) String() string {
	s := d.data
	if n := len(s); n > 0 && s[n-1] == 0 {
		s = s[:n-1]
	}
	return string(s)
}

// Nested is a decoder of the attributes nested in the current one.
func (d *Decoder) Nested() *Decoder { return NewDecoder(d.data) }

// Fail stops the walk with err (a nested decoder's), unless it is nil or an error is already set.
func (d *Decoder) Fail(err error) {
	if d.err == nil && err != nil {
		d.err = err
	}
}

func (d *Decoder) fail(size int) {
	d.Fail(fmt.Errorf("netlink attribute %d: %d bytes, want %d", d.typ, len(d.data), size))
}

// Err is the error that stopped the walk, if any.
func (d *Decoder) Err() error { return d.err }
