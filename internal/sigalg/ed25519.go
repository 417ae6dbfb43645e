package sigalg

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/asn1"
	"fmt"
	"io"

	"filippo.io/edwards25519"
)

// ed25519Suite is pure Ed25519 (RFC 8032) with the standard library's
// cofactorless verification.
type ed25519Suite struct{}

func init() { register(ed25519Suite{}) }

var oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}

func (ed25519Suite) ID() ID                     { return Ed25519 }
func (ed25519Suite) OID() asn1.ObjectIdentifier { return oidEd25519 }
func (ed25519Suite) SignatureSize() int         { return ed25519.SignatureSize }

func (ed25519Suite) GenerateKey(r io.Reader) (crypto.Signer, error) {
	_, priv, err := ed25519.GenerateKey(r)
	return priv, err
}

// DeriveKey uses the seed as the RFC 8032 private key.
func (ed25519Suite) DeriveKey(seed []byte) (crypto.Signer, error) {
	if err := checkSeed(seed); err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// Sign accepts any crypto.Signer holding an Ed25519 key; pure Ed25519 signs
// the message itself, which crypto.Signer expresses as crypto.Hash(0).
func (ed25519Suite) Sign(key crypto.Signer, msg []byte) ([]byte, error) {
	if !(ed25519Suite{}).owns(key.Public()) {
		return nil, fmt.Errorf("sign: %w", wrongKey(Ed25519, key))
	}
	if k, ok := key.(ed25519.PrivateKey); ok && len(k) == ed25519.PrivateKeySize {
		return ed25519.Sign(k, msg), nil
	}
	return key.Sign(rand.Reader, msg, crypto.Hash(0))
}

func (ed25519Suite) Verify(pub crypto.PublicKey, msg, sig []byte) error {
	k, ok := pub.(ed25519.PublicKey)
	if !ok || len(k) != ed25519.PublicKeySize {
		return fmt.Errorf("verify: %w: want an Ed25519 public key, got %T", ErrUnknownAlgorithm, pub)
	}
	if !ed25519.Verify(k, msg, sig) {
		return fmt.Errorf("verify %s: %w", Ed25519, ErrInvalidSignature)
	}
	return nil
}

func (ed25519Suite) owns(pub crypto.PublicKey) bool {
	k, ok := pub.(ed25519.PublicKey)
	return ok && len(k) == ed25519.PublicKeySize
}

// checkEd25519PublicKey refuses public keys that an honest key generator
// never produces and that weaken signatures: non-canonical encodings (two
// encodings, two identities), points outside the prime-order subgroup, and
// small multiples of the base point. A small-order key lets one signature
// verify for many messages; a key with a small-order component lets
// signatures be malleable across verifiers; a small multiple ±k·B is
// signed for by anyone who tries the first k scalars.
func checkEd25519PublicKey(raw []byte) error {
	p, err := new(edwards25519.Point).SetBytes(raw)
	if err != nil {
		return fmt.Errorf("%w: Ed25519 public key is not a curve point", ErrMalformedKey)
	}
	if !bytes.Equal(p.Bytes(), raw) {
		return fmt.Errorf("%w: Ed25519 public key is not canonically encoded", ErrMalformedKey)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: Ed25519 public key has small order", ErrWeakKey)
	}
	// [L-1]P == -P exactly when [L]P is the identity, i.e. P lies in the
	// prime-order subgroup; L itself is not a canonical scalar.
	// Public keys are public: a variable-time multiplication is safe and
	// twice as fast as the constant-time one.
	lp := new(edwards25519.Point).VarTimeMultiScalarMult([]*edwards25519.Scalar{groupOrderMinusOne}, []*edwards25519.Point{p})
	if lp.Equal(new(edwards25519.Point).Negate(p)) != 1 {
		return fmt.Errorf("%w: Ed25519 public key has a small-order component", ErrWeakKey)
	}
	if m, ok := ed25519SmallMultiples.find(raw); ok {
		return fmt.Errorf("%w: Ed25519 public key is ±%d·B; its secret scalar is %d or L-%d", ErrWeakKey, m, m, m)
	}
	return nil
}

// groupOrderMinusOne is L-1, L = 2^252 + 27742317777372353535851937790883648493,
// little-endian as edwards25519 scalars are encoded.
var groupOrderMinusOne = func() *edwards25519.Scalar {
	b := [32]byte{
		0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
		0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
	}
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(b[:])
	if err != nil {
		panic("sigalg: bad Ed25519 group order constant: " + err.Error())
	}
	return s
}()
