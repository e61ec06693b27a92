// Package digest computes SHA-256 and SHA-512 digests in plain Go.
//
// netloom hashes only to derive names: iptables and nftables chain names,
// rule comments and interface identifiers, which must equal the reference
// plugins' names byte for byte. This is not a security use.
//
// The package exists because, since Go 1.24, importing crypto/sha256 or
// crypto/sha512 links Go's FIPS 140 module (crypto/internal/boring pulls in
// crypto/cipher and with it AES, GCM, DRBG, SHA-3, HMAC and the entropy
// source): about 150 KiB of code that every short-lived plugin process would
// map. This package imports nothing from crypto/*.
//
// Sum256 and Sum512 return exactly what crypto/sha256.Sum256 and
// crypto/sha512.Sum512 return (FIPS 180-4); the tests compare them with the
// standard library. They are not constant-time and favour clarity over speed.
package digest

// pad returns data followed by FIPS 180-4 padding for a hash whose block is
// blockSize bytes and whose message length field is lenSize bytes: a 0x80
// byte, zeros, then the message length in bits, big-endian, so that the
// result is a whole number of blocks.
func pad(data []byte, blockSize, lenSize int) []byte {
	n := len(data) + 1 + lenSize
	n += (blockSize - n%blockSize) % blockSize
	msg := make([]byte, n)
	copy(msg, data)
	msg[len(data)] = 0x80
	bits := uint64(len(data)) << 3 // lengths above 2^61 bytes cannot occur
	for i := 0; i < 8; i++ {
		msg[n-1-i] = byte(bits >> (8 * i))
	}
	return msg
}

// be32 and be64 read big-endian words.
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func be64(b []byte) uint64 {
	return uint64(be32(b))<<32 | uint64(be32(b[4:]))
}
