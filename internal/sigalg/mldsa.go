package sigalg

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/asn1"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// mldsaSuite is ML-DSA (FIPS 204) at one security level, in its pure form
// with an empty context string, as RFC 9881 uses it in X.509. Signing is
// hedged (fresh randomness mixed into the nonce), as FIPS 204 recommends.
type mldsaSuite struct {
	id      ID
	oid     asn1.ObjectIdentifier
	scheme  sign.Scheme
	sigSize int
	// k and l are the dimensions of the matrix A (t1 has k polynomials,
	// s1 l) and eta bounds the coefficients of s1 and s2.
	k, l, eta int
	// signTo reaches circl's level-specific signer, whose generic Scheme.Sign
	// is the deterministic variant and panics on a foreign key.
	signTo func(key crypto.Signer, msg []byte, randomized bool) ([]byte, error)
}

func init() {
	register(&mldsaSuite{
		id: MLDSA44, oid: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 17},
		scheme: mldsa44.Scheme(), sigSize: mldsa44.SignatureSize, k: 4, l: 4, eta: 2,
		signTo: func(key crypto.Signer, msg []byte, randomized bool) ([]byte, error) {
			sk, ok := key.(*mldsa44.PrivateKey)
			if !ok {
				return nil, wrongKey(MLDSA44, key)
			}
			sig := make([]byte, mldsa44.SignatureSize)
			return sig, mldsa44.SignTo(sk, msg, nil, randomized, sig)
		},
	})
	register(&mldsaSuite{
		id: MLDSA65, oid: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18},
		scheme: mldsa65.Scheme(), sigSize: mldsa65.SignatureSize, k: 6, l: 5, eta: 4,
		signTo: func(key crypto.Signer, msg []byte, randomized bool) ([]byte, error) {
			sk, ok := key.(*mldsa65.PrivateKey)
			if !ok {
				return nil, wrongKey(MLDSA65, key)
			}
			sig := make([]byte, mldsa65.SignatureSize)
			return sig, mldsa65.SignTo(sk, msg, nil, randomized, sig)
		},
	})
	register(&mldsaSuite{
		id: MLDSA87, oid: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19},
		scheme: mldsa87.Scheme(), sigSize: mldsa87.SignatureSize, k: 8, l: 7, eta: 2,
		signTo: func(key crypto.Signer, msg []byte, randomized bool) ([]byte, error) {
			sk, ok := key.(*mldsa87.PrivateKey)
			if !ok {
				return nil, wrongKey(MLDSA87, key)
			}
			sig := make([]byte, mldsa87.SignatureSize)
			return sig, mldsa87.SignTo(sk, msg, nil, randomized, sig)
		},
	})
}

func wrongKey(id ID, key any) error {
	return fmt.Errorf("%w: want an %s key, got %T", ErrUnknownAlgorithm, id, key)
}

func (s *mldsaSuite) ID() ID                     { return s.id }
func (s *mldsaSuite) OID() asn1.ObjectIdentifier { return s.oid }
func (s *mldsaSuite) SignatureSize() int         { return s.sigSize }

// GenerateKey draws a FIPS 204 seed from r and derives the key from it, so
// every key Hallmark makes keeps its 32-byte seed and is stored in the
// compact seed form of RFC 9881.
func (s *mldsaSuite) GenerateKey(r io.Reader) (crypto.Signer, error) {
	seed := make([]byte, SeedSize)
	if _, err := io.ReadFull(r, seed); err != nil {
		return nil, fmt.Errorf("generate %s key: %w", s.id, err)
	}
	return s.DeriveKey(seed)
}

// DeriveKey is ML-DSA.KeyGen_internal of FIPS 204 with the seed as ξ.
func (s *mldsaSuite) DeriveKey(seed []byte) (crypto.Signer, error) {
	if err := checkSeed(seed); err != nil {
		return nil, err
	}
	_, sk := s.scheme.DeriveKey(seed)
	return sk, nil
}

// Sign signs with circl's hedged variant when it holds the key itself, and
// otherwise through crypto.Signer (a key manager's signer), which signs the
// whole message as crypto.Hash(0).
func (s *mldsaSuite) Sign(key crypto.Signer, msg []byte) ([]byte, error) {
	if !s.owns(key.Public()) {
		return nil, fmt.Errorf("sign: %w", wrongKey(s.id, key))
	}
	if _, own := key.(sign.PrivateKey); !own {
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	sig, err := s.signTo(key, msg, true)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}

// signDeterministic is FIPS 204's deterministic variant, used to check the
// implementation against known-answer vectors.
func (s *mldsaSuite) signDeterministic(key crypto.Signer, msg []byte) ([]byte, error) {
	return s.signTo(key, msg, false)
}

func (s *mldsaSuite) Verify(pub crypto.PublicKey, msg, sig []byte) error {
	pk, ok := pub.(sign.PublicKey)
	if !ok || pk.Scheme() != s.scheme {
		return fmt.Errorf("verify: %w", wrongKey(s.id, pub))
	}
	if len(sig) != s.sigSize || !s.scheme.Verify(pk, msg, sig, nil) {
		return fmt.Errorf("verify %s: %w", s.id, ErrInvalidSignature)
	}
	return nil
}

func (s *mldsaSuite) owns(pub crypto.PublicKey) bool {
	pk, ok := pub.(sign.PublicKey)
	return ok && pk.Scheme() == s.scheme
}

// parsePublicKey reads the FIPS 204 encoding of a public key after the key
// policy has passed it, which costs less than expanding the matrix A.
func (s *mldsaSuite) parsePublicKey(raw []byte) (crypto.PublicKey, error) {
	if err := s.checkPublicKey(raw); err != nil {
		return nil, err
	}
	pk, err := s.scheme.UnmarshalBinaryPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s public key: %v", ErrMalformedKey, s.id, err)
	}
	return pk, nil
}

// RFC 9881 ML-DSA-PrivateKey ::= CHOICE {
//
//	seed        [0] IMPLICIT OCTET STRING (SIZE (32)),
//	expandedKey OCTET STRING,
//	both        SEQUENCE { seed OCTET STRING, expandedKey OCTET STRING } }
type mldsaBoth struct {
	Seed     []byte
	Expanded []byte
}

// marshalPrivateKey writes the seed form when the seed is known (it is for
// every key Hallmark makes) and the expanded form otherwise.
func (s *mldsaSuite) marshalPrivateKey(key crypto.Signer) ([]byte, error) {
	seeded, ok := key.(sign.Seeded)
	if ok {
		if seed := seeded.Seed(); len(seed) == SeedSize {
			return asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: seed})
		}
	}
	bm, ok := key.(sign.PrivateKey)
	if !ok {
		return nil, wrongKey(s.id, key)
	}
	expanded, err := bm.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal %s key: %w", s.id, err)
	}
	return asn1.Marshal(expanded)
}

func (s *mldsaSuite) parsePrivateKey(der []byte) (crypto.Signer, error) {
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(der, &raw)
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: %s private key is not DER", ErrMalformedKey, s.id)
	}
	switch {
	case raw.Class == asn1.ClassContextSpecific && raw.Tag == 0 && !raw.IsCompound:
		if len(raw.Bytes) != SeedSize {
			return nil, fmt.Errorf("%w: %s seed is %d bytes, want %d", ErrMalformedKey, s.id, len(raw.Bytes), SeedSize)
		}
		return s.deriveChecked(raw.Bytes)
	case raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagOctetString:
		return s.parseExpanded(raw.Bytes)
	case raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagSequence:
		var both mldsaBoth
		if rest, err := asn1.Unmarshal(der, &both); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: %s private key: bad seed-and-expanded form", ErrMalformedKey, s.id)
		}
		if len(both.Seed) != SeedSize {
			return nil, fmt.Errorf("%w: %s seed is %d bytes, want %d", ErrMalformedKey, s.id, len(both.Seed), SeedSize)
		}
		key, err := s.deriveChecked(both.Seed)
		if err != nil {
			return nil, err
		}
		expanded, _ := key.(sign.PrivateKey).MarshalBinary()
		if !bytes.Equal(expanded, both.Expanded) {
			return nil, fmt.Errorf("%w: %s private key: seed and expanded key disagree", ErrMalformedKey, s.id)
		}
		return key, nil
	}
	return nil, fmt.Errorf("%w: %s private key has an unknown form", ErrMalformedKey, s.id)
}
