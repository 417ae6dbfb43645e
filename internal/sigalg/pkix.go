package sigalg

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types of the encodings this package reads and writes.
const (
	PEMPublicKey  = "PUBLIC KEY"
	PEMPrivateKey = "PRIVATE KEY"
)

// MaxKeyDER bounds the DER of any key this package parses: an ML-DSA-87
// private key in its seed-and-expanded form is under 5 KiB. Anything larger
// is refused before parsing.
const MaxKeyDER = 8 << 10

// subjectPublicKeyInfo is RFC 5280's SubjectPublicKeyInfo.
type subjectPublicKeyInfo struct {
	Algorithm algorithmIdentifier
	PublicKey asn1.BitString
}

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// pkcs8 is RFC 5208/5958's PrivateKeyInfo without attributes.
type pkcs8 struct {
	Version    int
	Algorithm  algorithmIdentifier
	PrivateKey []byte
}

// MarshalPublicKey encodes pub as DER SubjectPublicKeyInfo. The encoding is
// canonical: one key, one byte string, hence one identity.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	suite, err := SuiteOf(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	if m, ok := suite.(*mldsaSuite); ok {
		raw, err := pub.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("marshal public key: %w", err)
		}
		return asn1.Marshal(subjectPublicKeyInfo{
			Algorithm: algorithmIdentifier{Algorithm: m.oid},
			PublicKey: asn1.BitString{Bytes: raw, BitLength: 8 * len(raw)},
		})
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return der, nil
}

// ParsePublicKey decodes a DER SubjectPublicKeyInfo of any supported suite.
// It accepts only the canonical encoding MarshalPublicKey writes, and
// refuses the keys CheckPublicKey refuses (ErrWeakKey: keys anyone can sign
// for). MarshalPublicKey encodes any key: encoding is not where keys enter.
func ParsePublicKey(der []byte) (crypto.PublicKey, error) {
	if len(der) > MaxKeyDER {
		return nil, fmt.Errorf("parse public key: %w: %d bytes exceeds %d", ErrMalformedKey, len(der), MaxKeyDER)
	}
	var spki subjectPublicKeyInfo
	rest, err := asn1.Unmarshal(der, &spki)
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("parse public key: %w: not a DER SubjectPublicKeyInfo", ErrMalformedKey)
	}
	pub, err := decodePublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	canonical, err := MarshalPublicKey(pub)
	if err != nil || !bytes.Equal(canonical, der) {
		return nil, fmt.Errorf("parse public key: %w: not in canonical DER form", ErrMalformedKey)
	}
	return pub, nil
}

// ParsePublicKeyWithSuite is ParsePublicKey that also returns the key's
// suite, so that a caller holding a freshly parsed key needs no second
// lookup whose error it could only ignore.
func ParsePublicKeyWithSuite(der []byte) (crypto.PublicKey, Suite, error) {
	pub, err := ParsePublicKey(der)
	if err != nil {
		return nil, nil, err
	}
	suite, err := SuiteOf(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("parse public key: %w", err)
	}
	return pub, suite, nil
}

func decodePublicKey(spki subjectPublicKeyInfo) (crypto.PublicKey, error) {
	oid := spki.Algorithm.Algorithm
	for _, s := range All() {
		if m, ok := s.(*mldsaSuite); ok && m.oid.Equal(oid) {
			if len(spki.Algorithm.Parameters.FullBytes) != 0 || spki.PublicKey.BitLength%8 != 0 {
				return nil, fmt.Errorf("%w: %s key with parameters or partial bytes", ErrMalformedKey, m.id)
			}
			return m.parsePublicKey(spki.PublicKey.Bytes)
		}
	}
	if !oid.Equal(oidECPublicKey) && !oid.Equal(oidEd25519) {
		return nil, fmt.Errorf("%w: public key algorithm %s", ErrUnknownAlgorithm, oid)
	}
	full, err := asn1.Marshal(spki)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	pub, err := x509.ParsePKIXPublicKey(full)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	if k, ok := pub.(*ecdsa.PublicKey); ok && (p256Suite{}).owns(k) {
		// crypto/x509 has put the point on the curve; its encoding is at
		// hand, which spares CheckPublicKey's re-encoding.
		if err := checkP256Point(spki.PublicKey.Bytes); err != nil {
			return nil, err
		}
		return pub, nil
	}
	if err := CheckPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// MarshalPrivateKey encodes key as DER PKCS #8. ML-DSA keys use the RFC 9881
// seed form when their seed is known.
func MarshalPrivateKey(key crypto.Signer) ([]byte, error) {
	suite, err := SuiteOf(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	m, ok := suite.(*mldsaSuite)
	if !ok {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("marshal private key: %w", err)
		}
		return der, nil
	}
	inner, err := m.marshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return asn1.Marshal(pkcs8{Algorithm: algorithmIdentifier{Algorithm: m.oid}, PrivateKey: inner})
}

// ParsePrivateKey decodes a DER PKCS #8 private key of any supported suite.
// It refuses a key whose public key CheckPublicKey refuses (a P-256 scalar
// of 1, an ML-DSA key with s1 = s2 = 0), and an expanded ML-DSA key that
// no key generation makes (see parseExpanded).
func ParsePrivateKey(der []byte) (crypto.Signer, error) {
	if len(der) > MaxKeyDER {
		return nil, fmt.Errorf("parse private key: %w: %d bytes exceeds %d", ErrMalformedKey, len(der), MaxKeyDER)
	}
	var info pkcs8
	rest, err := asn1.Unmarshal(der, &info)
	if err != nil || len(rest) != 0 || info.Version != 0 {
		return nil, fmt.Errorf("parse private key: %w: not a DER PKCS #8 PrivateKeyInfo", ErrMalformedKey)
	}
	for _, s := range All() {
		if m, ok := s.(*mldsaSuite); ok && m.oid.Equal(info.Algorithm.Algorithm) {
			if len(info.Algorithm.Parameters.FullBytes) != 0 {
				return nil, fmt.Errorf("parse private key: %w: %s key with parameters", ErrMalformedKey, m.id)
			}
			key, err := m.parsePrivateKey(info.PrivateKey)
			if err != nil {
				return nil, fmt.Errorf("parse private key: %w", err)
			}
			return key, nil
		}
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w: %v", ErrMalformedKey, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse private key: %w: key type %T", ErrUnknownAlgorithm, key)
	}
	if err := CheckPublicKey(signer.Public()); err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	return signer, nil
}

// ParsePrivateKeyWithSuite is ParsePrivateKey that also returns the key's
// suite.
func ParsePrivateKeyWithSuite(der []byte) (crypto.Signer, Suite, error) {
	key, err := ParsePrivateKey(der)
	if err != nil {
		return nil, nil, err
	}
	suite, err := SuiteOf(key)
	if err != nil {
		return nil, nil, fmt.Errorf("parse private key: %w", err)
	}
	return key, suite, nil
}

// EncodePublicKeyPEM encodes pub as a PEM "PUBLIC KEY" block.
func EncodePublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMPublicKey, Bytes: der}), nil
}

// EncodePrivateKeyPEM encodes key as a PEM "PRIVATE KEY" block.
func EncodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := MarshalPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMPrivateKey, Bytes: der}), nil
}

// ErrNoPEM reports input without the expected PEM block.
var ErrNoPEM = errors.New("no PEM block found")

// ParseKeyPEM reads the first PEM block of data and returns either a
// private key (crypto.Signer) or a public key, whichever it holds. Text
// around the block is ignored, as OpenSSL does; other block types are
// refused.
func ParseKeyPEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: expected %q or %q", ErrNoPEM, PEMPrivateKey, PEMPublicKey)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: encrypted or annotated PEM keys are not supported", ErrMalformedKey)
	}
	switch block.Type {
	case PEMPrivateKey:
		return ParsePrivateKey(block.Bytes)
	case PEMPublicKey:
		return ParsePublicKey(block.Bytes)
	}
	return nil, fmt.Errorf("%w: PEM block %q, want %q or %q", ErrMalformedKey, block.Type, PEMPrivateKey, PEMPublicKey)
}

// ParsePublicKeyPEM returns the public key held in data, which may be a
// public or a private key PEM.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	key, err := ParseKeyPEM(data)
	if err != nil {
		return nil, err
	}
	if signer, ok := key.(crypto.Signer); ok {
		return signer.Public(), nil
	}
	return key, nil
}

// ParsePrivateKeyPEM returns the private key held in data.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	key, err := ParseKeyPEM(data)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: found a public key where a private key is needed", ErrMalformedKey)
	}
	return signer, nil
}
