package sigalg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"fmt"

	"github.com/cloudflare/circl/sign"
)

// CheckPublicKey applies Hallmark's key policy to a public key of any suite.
// It refuses, with an error wrapping ErrWeakKey, a key whose private key is
// public or can be computed from the key itself, so that anyone could sign
// for it:
//
//   - ML-DSA: a key any of whose t1 polynomials takes fewer than 128
//     distinct coefficient values (t1 = 0, a zero polynomial, keys made
//     with s1 = 0, constant or near-constant t1): see checkMLDSAPublicKey;
//   - ECDSA P-256: ±k·G for 1 ≤ k ≤ 2^16, the base point included;
//   - Ed25519: ±k·B for 1 ≤ k ≤ 2^16, and keys of small order or with a
//     small-order component.
//
// It refuses with ErrMalformedKey what no honest generator encodes (a
// non-canonical Ed25519 point, a P-256 point off the curve or at
// infinity), and with ErrUnknownAlgorithm a key of no suite.
//
// ParsePublicKey and ParsePrivateKey apply it to every key they return;
// call it for a key that arrives in another form. docs/crypto.md
// ("Degenerate and weak keys") gives the reasons and the probability that
// an honest key is refused (below 2^-200 for ML-DSA, zero for the others).
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !(p256Suite{}).owns(k) {
			return fmt.Errorf("%w: ECDSA curve %s", ErrUnknownAlgorithm, k.Curve.Params().Name)
		}
		return checkP256PublicKey(k)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 public key is %d bytes, want %d", ErrMalformedKey, len(k), ed25519.PublicKeySize)
		}
		return checkEd25519PublicKey(k)
	case sign.PublicKey:
		suite, err := SuiteOf(k)
		if err != nil {
			return err
		}
		raw, err := k.MarshalBinary()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformedKey, err)
		}
		return suite.(*mldsaSuite).checkPublicKey(raw)
	}
	return fmt.Errorf("%w: key type %T", ErrUnknownAlgorithm, pub)
}

// checkP256PublicKey refuses points off the curve or at infinity (which
// crypto/ecdsa will not encode) and the small multiples of the base point.
func checkP256PublicKey(k *ecdsa.PublicKey) error {
	raw, err := k.Bytes()
	if err != nil {
		return fmt.Errorf("%w: ECDSA P-256 public key is not a point of the curve: %v", ErrMalformedKey, err)
	}
	return checkP256Point(raw)
}

// checkP256Point refuses the small multiples of the base point, given the
// SEC 1 encoding of a point of the curve (uncompressed or compressed: x
// follows the first byte either way).
func checkP256Point(point []byte) error {
	if len(point) < 1+p256CoordSize {
		return fmt.Errorf("%w: ECDSA P-256 public key of %d bytes", ErrMalformedKey, len(point))
	}
	if m, ok := p256SmallMultiples.find(point[1 : 1+p256CoordSize]); ok {
		return fmt.Errorf("%w: ECDSA P-256 public key is ±%d·G; its private key is %d or n-%d", ErrWeakKey, m, m, m)
	}
	return nil
}
