package digest

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"testing"
)

// TestLengths covers every length up to 300 bytes, which crosses each
// padding boundary of both hashes (55/56/63/64, 111/112/127/128, 183/184,
// 191/192, 239/240, 255/256, ...) more than once.
func TestLengths(t *testing.T) {
	data := make([]byte, 300)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(data); n++ {
		in := data[:n]
		if got, want := Sum256(in), sha256.Sum256(in); got != want {
			t.Errorf("Sum256(len %d) = %x, want %x", n, got, want)
		}
		if got, want := Sum512(in), sha512.Sum512(in); got != want {
			t.Errorf("Sum512(len %d) = %x, want %x", n, got, want)
		}
	}
}

// TestVectors checks the FIPS 180-4 example vectors, independently of the
// standard library.
func TestVectors(t *testing.T) {
	tests := []struct {
		in     string
		sha256 string
		sha512 string
	}{
		{
			in:     "abc",
			sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
			sha512: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
				"2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
		},
		{
			in:     "",
			sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			sha512: "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce" +
				"47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
		},
	}
	for _, tt := range tests {
		if got := Sum256([]byte(tt.in)); hex.EncodeToString(got[:]) != tt.sha256 {
			t.Errorf("Sum256(%q) = %x, want %s", tt.in, got, tt.sha256)
		}
		if got := Sum512([]byte(tt.in)); hex.EncodeToString(got[:]) != tt.sha512 {
			t.Errorf("Sum512(%q) = %x, want %s", tt.in, got, tt.sha512)
		}
	}
}

func FuzzSum(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("abc"))
	f.Add(make([]byte, 111))
	f.Add(make([]byte, 1000))
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, want := Sum256(in), sha256.Sum256(in); got != want {
			t.Errorf("Sum256(%x) = %x, want %x", in, got, want)
		}
		if got, want := Sum512(in), sha512.Sum512(in); got != want {
			t.Errorf("Sum512(%x) = %x, want %x", in, got, want)
		}
	})
}
