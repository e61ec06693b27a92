package nlattr

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAppendPadsAndNests(t *testing.T) {
	b := AppendString(nil, 1, "ab") // 4 + 3 bytes, padded to 8
	b = AppendNested(b, 2, AppendUint32(nil, 3, 0x01020304))
	b = AppendUint64(b, 4, 5)
	hdr := func(n, typ uint16) []byte {
		return binary.NativeEndian.AppendUint16(binary.NativeEndian.AppendUint16(nil, n), typ)
	}
	want := slices.Concat(
		hdr(7, 1), []byte{'a', 'b', 0, 0},
		hdr(12, 2|unix.NLA_F_NESTED), hdr(8, 3), []byte{1, 2, 3, 4},
		hdr(12, 4), []byte{0, 0, 0, 0, 0, 0, 0, 5},
	)
	if !bytes.Equal(b, want) {
		t.Fatalf("got  %v\nwant %v", b, want)
	}
	d := NewDecoder(b)
	var got []string
	for d.Next() {
		switch d.Type() {
		case 1:
			got = append(got, d.String())
		case 2:
			nd := d.Nested()
			for nd.Next() {
				if nd.Type() != 3 || nd.Uint32() != 0x01020304 {
					t.Errorf("nested attribute %d %x", nd.Type(), nd.Bytes())
				}
			}
			d.Fail(nd.Err())
			got = append(got, "nested")
		case 4:
			if d.Uint64() != 5 {
				t.Errorf("uint64 %x", d.Bytes())
			}
			got = append(got, "u64")
		}
	}
	if d.Err() != nil || len(got) != 3 || got[0] != "ab" {
		t.Errorf("decoded %q, %v", got, d.Err())
	}
}

func TestDecoderErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"trailing bytes":    {8, 0, 1, 0, 0, 0, 0, 0, 1},
		"length past end":   {9, 0, 1, 0, 0, 0, 0, 0},
		"length too small":  {3, 0, 1, 0},
		"number of 2 bytes": {6, 0, 1, 0, 0, 1, 0, 0},
	} {
		d := NewDecoder(b)
		for d.Next() {
			_ = d.Uint32()
		}
		if d.Err() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
