package sigalg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
)

// p256Suite is ECDSA over NIST P-256 with SHA-256; signatures are ASN.1 DER
// (Ecdsa-Sig-Value), the form X.509, TLS and OpenSSL use.
type p256Suite struct{}

func init() { register(p256Suite{}) }

// oidECPublicKey is id-ecPublicKey (RFC 5480); the curve is its parameter.
var (
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
)

// p256DeriveLabel domain-separates the P-256 key derivation.
const p256DeriveLabel = "hallmark sigalg ecdsa-p256 derive v1"

func (p256Suite) ID() ID                     { return ECDSAP256 }
func (p256Suite) OID() asn1.ObjectIdentifier { return oidECDSAWithSHA256 }
func (p256Suite) SignatureSize() int         { return 72 }

func (p256Suite) GenerateKey(r io.Reader) (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), r)
}

// DeriveKey derives the scalar by KDF and rejection: candidate i is
// HMAC-SHA256(key=seed, label || i) read as a big-endian integer, and the
// first candidate in [1, n-1] is the private scalar. A candidate is rejected
// with probability about 2^-32, so the loop ends at i = 0 in practice; it is
// bounded so that a broken hash cannot loop forever.
func (p256Suite) DeriveKey(seed []byte) (crypto.Signer, error) {
	if err := checkSeed(seed); err != nil {
		return nil, err
	}
	for i := range 256 {
		mac := hmac.New(sha256.New, seed)
		mac.Write([]byte(p256DeriveLabel))
		mac.Write([]byte{byte(i)})
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), mac.Sum(nil))
		if err == nil {
			return key, nil
		}
	}
	return nil, errors.New("derive key: no P-256 scalar found in 256 candidates")
}

// Sign accepts any crypto.Signer holding a P-256 key, such as one backed by
// an HSM, and hands it the SHA-256 digest as crypto.Signer requires.
func (p256Suite) Sign(key crypto.Signer, msg []byte) ([]byte, error) {
	if !(p256Suite{}).owns(key.Public()) {
		return nil, fmt.Errorf("sign: %w", wrongKey(ECDSAP256, key))
	}
	digest := sha256.Sum256(msg)
	if k, ok := key.(*ecdsa.PrivateKey); ok {
		return ecdsa.SignASN1(rand.Reader, k, digest[:])
	}
	return key.Sign(rand.Reader, digest[:], crypto.SHA256)
}

func (p256Suite) Verify(pub crypto.PublicKey, msg, sig []byte) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return fmt.Errorf("verify: %w: want an ECDSA P-256 public key, got %T", ErrUnknownAlgorithm, pub)
	}
	digest := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(k, digest[:], sig) {
		return fmt.Errorf("verify %s: %w", ECDSAP256, ErrInvalidSignature)
	}
	return nil
}

func (p256Suite) owns(pub crypto.PublicKey) bool {
	k, ok := pub.(*ecdsa.PublicKey)
	return ok && k != nil && k.Curve == elliptic.P256()
}
