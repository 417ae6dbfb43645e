package sealing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// AES key wrap with padding (RFC 5649; NIST SP 800-38F calls it KWP). It
// is here, rather than AES-GCM, because it is what a PKCS #11 token can
// compute inside itself (CKM_AES_KEY_WRAP_PAD, which SoftHSM2 2.6
// implements): the ECDH programming channel (ecdhwrap.go) wraps a device
// key with it so that the key never leaves an HSM in the clear. It is
// deterministic and authenticated by its 32-bit integrity check value and
// the strong pseudo-random permutation of the six wrapping rounds, which is
// enough for a key encrypted once under a key used once.

// ErrKeyUnwrap reports wrapped data that does not unwrap: the wrong key
// or tampered, truncated or malformed data. Like ErrOpen it says nothing
// about which check failed.
var ErrKeyUnwrap = errors.New("cannot unwrap key (wrong key, or tampered or malformed data)")

// MaxKWPPlaintext bounds what KWPWrap wraps and so what KWPUnwrap accepts:
// the largest key Hallmark wraps is an ML-DSA-87 PKCS #8 (under 5 KiB).
// RFC 5649 allows up to 2^32 bytes; the bound keeps the unwrapper's work
// and allocation small for any input it is fed.
const MaxKWPPlaintext = 64 << 10

// kwpAIV is the first half of RFC 5649's alternative initial value; the
// second half is the plaintext's length in bytes.
const kwpAIV = 0xA65959A6

const semiblock = 8

// KWPWrap wraps plaintext (1 to MaxKWPPlaintext bytes) under kek, an AES
// key of 16, 24 or 32 bytes, as RFC 5649 section 4.1 specifies.
func KWPWrap(kek, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key wrap: %w", err)
	}
	if len(plaintext) == 0 || len(plaintext) > MaxKWPPlaintext {
		return nil, fmt.Errorf("key wrap: %d bytes to wrap, want 1 to %d", len(plaintext), MaxKWPPlaintext)
	}
	n := (len(plaintext) + semiblock - 1) / semiblock
	// out holds A || R[1] … R[n] throughout; the padding is the zeros make
	// leaves at the end.
	out := make([]byte, semiblock*(n+1))
	binary.BigEndian.PutUint32(out, kwpAIV)
	binary.BigEndian.PutUint32(out[4:], uint32(len(plaintext)))
	copy(out[semiblock:], plaintext)
	if n == 1 {
		// One semiblock of plaintext: A || P is a single AES block
		// (RFC 5649 section 4.1, the special case).
		block.Encrypt(out, out)
		return out, nil
	}
	wrapRounds(block, out)
	return out, nil
}

// KWPUnwrap unwraps what KWPWrap wrapped under kek, checking the integrity
// value, the length it carries and that the padding is zero (RFC 5649
// section 4.2). These checks run in constant time and every failure is the
// same ErrKeyUnwrap. A kek of the wrong size is the caller's error and is
// reported as such.
func KWPUnwrap(kek, wrapped []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key unwrap: %w", err)
	}
	// The length of the input is public, so refusing on it early leaks
	// nothing.
	if len(wrapped) < 2*semiblock || len(wrapped)%semiblock != 0 ||
		len(wrapped) > semiblock+MaxKWPPlaintext+semiblock {
		return nil, ErrKeyUnwrap
	}
	n := len(wrapped)/semiblock - 1
	buf := make([]byte, len(wrapped))
	copy(buf, wrapped)
	if n == 1 {
		block.Decrypt(buf, buf)
	} else {
		unwrapRounds(block, buf)
	}
	// ok accumulates every check as 1 (pass) or 0 (fail) without a branch
	// on secret-derived data.
	var aiv [4]byte
	binary.BigEndian.PutUint32(aiv[:], kwpAIV)
	ok := subtle.ConstantTimeCompare(buf[:4], aiv[:])
	mli := uint64(binary.BigEndian.Uint32(buf[4:]))
	padded := uint64(semiblock * n)
	// 8(n-1) < MLI <= 8n: the padding is 0 to 7 bytes.
	ok &= ctLessOrEq(padded-semiblock+1, mli) & ctLessOrEq(mli, padded)
	// Every byte of the last semiblock at or past MLI is zero. The loop
	// reads all eight bytes whatever MLI is.
	last := buf[len(buf)-semiblock:]
	var nonzero byte
	for i, b := range last {
		pos := padded - semiblock + uint64(i)
		isPad := byte(ctLessOrEq(mli, pos)) // 1 when pos >= MLI
		nonzero |= b & -isPad
	}
	ok &= subtle.ConstantTimeByteEq(nonzero, 0)
	if ok != 1 {
		clear(buf)
		return nil, ErrKeyUnwrap
	}
	// MLI is now known to be valid, so branching on it is safe.
	plain := make([]byte, mli)
	copy(plain, buf[semiblock:])
	clear(buf)
	return plain, nil
}

// ctLessOrEq returns 1 if x <= y and 0 otherwise, in constant time, for x
// and y below 2^63 (here they are below 2^33).
func ctLessOrEq(x, y uint64) int {
	return int(((y - x) >> 63) ^ 1)
}

// wrapRounds is RFC 3394's wrapping function W over buf = A || R[1..n]
// (index form, section 2.2.1), in place; n >= 2.
func wrapRounds(block cipher.Block, buf []byte) {
	n := len(buf)/semiblock - 1
	var b [aes.BlockSize]byte
	a := buf[:semiblock]
	for j := range 6 {
		for i := 1; i <= n; i++ {
			r := buf[i*semiblock : (i+1)*semiblock]
			copy(b[:semiblock], a)
			copy(b[semiblock:], r)
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(b[:semiblock])^t)
			copy(r, b[semiblock:])
		}
	}
	clear(b[:])
}

// unwrapRounds is the inverse W⁻¹ (section 2.2.2), in place; n >= 2.
func unwrapRounds(block cipher.Block, buf []byte) {
	n := len(buf)/semiblock - 1
	var b [aes.BlockSize]byte
	a := buf[:semiblock]
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			r := buf[i*semiblock : (i+1)*semiblock]
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(b[:semiblock], binary.BigEndian.Uint64(a)^t)
			copy(b[semiblock:], r)
			block.Decrypt(b[:], b[:])
			copy(a, b[:semiblock])
			copy(r, b[semiblock:])
		}
	}
	clear(b[:])
}
