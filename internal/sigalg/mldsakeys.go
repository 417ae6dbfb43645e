package sigalg

import (
	"bytes"
	"crypto"
	"crypto/sha3"
	"fmt"
	"math/bits"

	"github.com/cloudflare/circl/sign"
)

// FIPS 204 encodings: a public key is ρ (32 bytes) ‖ t1, t1 being k
// polynomials of 256 coefficients of 10 bits; an expanded private key is
// ρ ‖ K ‖ tr ‖ s1 ‖ s2 ‖ t0, tr = SHAKE256(public key, 64 bytes), s1 and s2
// l and k polynomials of coefficients η - c in bitlen(2η) bits.
const (
	mldsaN          = 256
	mldsaSeedSize   = 32
	mldsaTRSize     = 64
	mldsaT1Bits     = 10
	mldsaT1PolySize = mldsaN * mldsaT1Bits / 8
)

// mldsaT1MinDistinct is the fewest distinct values each polynomial of t1
// must take. An honest t1 coefficient is the top 10 bits of a uniform
// value mod q, close to uniform on [0, 1024): a polynomial takes about 227
// distinct values, and fewer than 128 with probability below
// C(1024,127)·(127·2^13/q)^256 < 2^-221 (docs/crypto.md). A key whose t1
// is small — t1 = 0, a zero polynomial, s1 = 0 (t1 coefficients in
// {0, 1023}), any t1 whose coefficients all lie within ±63 of 0 mod 1024 —
// takes at most 127, and is signed for without any secret: with s1 = 0,
// the signer treats -t1·2^13 as its t0.
const mldsaT1MinDistinct = 128

// checkPublicKey applies the policy to the FIPS 204 encoding of a public
// key of the suite's size, in at most one pass over t1.
func (s *mldsaSuite) checkPublicKey(raw []byte) error {
	if len(raw) != s.scheme.PublicKeySize() {
		return fmt.Errorf("%w: %s public key is %d bytes, want %d", ErrMalformedKey, s.id, len(raw), s.scheme.PublicKeySize())
	}
	t1 := raw[mldsaSeedSize:]
	weak, weakDistinct, weakZero, zeros := -1, 0, false, 0
	for i := range len(t1) / mldsaT1PolySize {
		n, zero := t1Distinct(t1[i*mldsaT1PolySize:(i+1)*mldsaT1PolySize], mldsaT1MinDistinct)
		if zero {
			zeros++
		}
		if n < mldsaT1MinDistinct && weak < 0 {
			weak, weakDistinct, weakZero = i, n, zero
		}
	}
	switch {
	case weak < 0:
		return nil
	case zeros == len(t1)/mldsaT1PolySize:
		return fmt.Errorf("%w: %s public key has t1 = 0, so its signatures need no secret", ErrWeakKey, s.id)
	case weakZero:
		return fmt.Errorf("%w: %s public key: polynomial %d of t1 is zero", ErrWeakKey, s.id, weak)
	}
	return fmt.Errorf("%w: %s public key: polynomial %d of t1 takes %d distinct values (an honest key about 227, at least %d required): a key of small t1 is signed for without its secret",
		ErrWeakKey, s.id, weak, weakDistinct, mldsaT1MinDistinct)
}

// t1Distinct counts the distinct coefficients of one packed t1 polynomial,
// four 10-bit values little-endian in every 5 bytes, and reports whether
// they are all zero. It stops counting at limit: the policy needs
// mldsaT1MinDistinct, which an honest polynomial reaches after about 140
// of its 256 coefficients.
func t1Distinct(poly []byte, limit int) (distinct int, zero bool) {
	var seen [1 << mldsaT1Bits / 64]uint64
	for j := 0; j+5 <= len(poly) && distinct < limit; j += 5 {
		b := poly[j : j+5 : j+5]
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32
		for range 4 {
			c := w & (1<<mldsaT1Bits - 1)
			bit := uint64(1) << (c & 63)
			if seen[c>>6]&bit == 0 {
				seen[c>>6] |= bit
				distinct++
			}
			w >>= mldsaT1Bits
		}
	}
	return distinct, distinct == 1 && seen[0] == 1
}

// deriveChecked derives the key of a seed and applies the policy to its
// public key, which derivation yields at no extra cost.
func (s *mldsaSuite) deriveChecked(seed []byte) (crypto.Signer, error) {
	if err := checkSeed(seed); err != nil {
		return nil, err
	}
	pk, sk := s.scheme.DeriveKey(seed)
	raw, err := pk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	if err := s.checkPublicKey(raw); err != nil {
		return nil, err
	}
	return sk, nil
}

// parseExpanded reads an expanded private key, which FIPS 204 leaves
// unvalidated, and refuses one that no key generation makes: s1 or s2
// coefficients outside [-η, η], a tr that is not the hash of the public
// key, a public key the policy refuses (s1 = s2 = 0 gives t1 = 0), or a t0
// that does not belong to s1 and s2, which a pairwise-consistency test
// (sign, then verify) finds. The seed form, which Hallmark writes, needs
// none of this: derivation makes every part.
func (s *mldsaSuite) parseExpanded(raw []byte) (crypto.Signer, error) {
	if len(raw) != s.scheme.PrivateKeySize() {
		return nil, fmt.Errorf("%w: %s expanded private key is %d bytes, want %d", ErrMalformedKey, s.id, len(raw), s.scheme.PrivateKeySize())
	}
	secrets := raw[2*mldsaSeedSize+mldsaTRSize:]
	etaBits := bits.Len(uint(2 * s.eta))
	if !etaInRange(secrets[:(s.l+s.k)*mldsaN*etaBits/8], etaBits, s.eta) {
		return nil, fmt.Errorf("%w: %s expanded private key has s1 or s2 coefficients outside [-%d, %d]", ErrMalformedKey, s.id, s.eta, s.eta)
	}
	sk, err := s.scheme.UnmarshalBinaryPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s expanded private key: %v", ErrMalformedKey, s.id, err)
	}
	pub, err := sk.Public().(sign.PublicKey).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: %s expanded private key: %v", ErrMalformedKey, s.id, err)
	}
	if err := s.checkPublicKey(pub); err != nil {
		return nil, err
	}
	if !bytes.Equal(sha3.SumSHAKE256(pub, mldsaTRSize), raw[2*mldsaSeedSize:2*mldsaSeedSize+mldsaTRSize]) {
		return nil, fmt.Errorf("%w: %s expanded private key: tr is not the hash of its public key", ErrMalformedKey, s.id)
	}
	// The public key's own encoding is parsed afresh, as a verifier would.
	pk, err := s.scheme.UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %s expanded private key: %v", ErrMalformedKey, s.id, err)
	}
	msg := []byte("hallmark sigalg pairwise consistency")
	sig, err := s.signTo(sk, msg, true)
	if err != nil || s.Verify(pk, msg, sig) != nil {
		return nil, fmt.Errorf("%w: %s expanded private key: its signatures do not verify under its public key (t0 does not belong to s1 and s2)", ErrMalformedKey, s.id)
	}
	return sk, nil
}

// etaInRange reports whether every packed coefficient η - c, in width bits
// little-endian, is at most 2η, that is c in [-η, η].
func etaInRange(packed []byte, width, eta int) bool {
	var acc uint32
	have := 0
	for _, b := range packed {
		acc |= uint32(b) << have
		have += 8
		for have >= width {
			if int(acc&(1<<width-1)) > 2*eta {
				return false
			}
			acc >>= width
			have -= width
		}
	}
	return true
}
