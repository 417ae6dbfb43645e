package sealing

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types of Hallmark's KEM keys. The body is the binary encoding
// of MarshalPrivateKey and MarshalPublicKey.
const (
	PEMPrivateKey = "HALLMARK KEM PRIVATE KEY"
	PEMPublicKey  = "HALLMARK KEM PUBLIC KEY"
)

// MaxKeyPEM bounds a PEM key file; the largest key (the hybrid public key)
// needs under 2 KiB. Larger input is refused before decoding.
const MaxKeyPEM = 8 << 10

// keyFormatVersion is the first byte of every encoded key, so the format
// can change without ambiguity.
const keyFormatVersion = 1

// The second byte says which half of the pair the encoding holds: an
// X25519 private and public key have the same length, and one must never
// be read as the other.
const (
	kindPublic  = 0x01
	kindPrivate = 0x02
)

// keyPrefixSize is the format version, the kind and the KEM identifier.
const keyPrefixSize = 4

// ErrMalformedKey reports a key encoding that cannot be parsed or is not in
// canonical form.
var ErrMalformedKey = errors.New("malformed KEM key")

// PublicKey is a KEM public key: what a sender seals to.
type PublicKey struct {
	kem KEM
	key hpke.PublicKey
}

// PrivateKey is a KEM private key: what a recipient opens with.
type PrivateKey struct {
	kem KEM
	key hpke.PrivateKey
	pub *PublicKey
}

// GenerateKey makes a fresh key pair for kem from the system's random
// source.
func GenerateKey(kem KEM) (*PrivateKey, error) {
	p, err := kem.params()
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	key, err := p.hpke().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", kem, err)
	}
	return newPrivateKey(kem, key), nil
}

func newPrivateKey(kem KEM, key hpke.PrivateKey) *PrivateKey {
	return &PrivateKey{kem: kem, key: key, pub: &PublicKey{kem: kem, key: key.PublicKey()}}
}

// Public returns the public key of k.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// KEM returns the KEM of k.
func (k *PrivateKey) KEM() KEM { return k.kem }

// KEM returns the KEM of k.
func (k *PublicKey) KEM() KEM { return k.kem }

// MarshalPrivateKey encodes k: format version 1 (one byte), kind 2 (one
// byte: private key), the KEM's HPKE identifier (big-endian uint16), then
// the RFC 9180 SerializePrivateKey output (the 32-byte seed of the hybrid,
// the 64-byte FIPS 203 seed of ML-KEM-768, the clamped X25519 scalar).
func MarshalPrivateKey(k *PrivateKey) ([]byte, error) {
	raw, err := k.key.Bytes()
	if err != nil {
		return nil, fmt.Errorf("marshal %s private key: %w", k.kem, err)
	}
	return encodeKey(kindPrivate, k.kem, raw), nil
}

// MarshalPublicKey encodes k: format version 1 (one byte), kind 1 (one
// byte: public key), the KEM's HPKE identifier (big-endian uint16), then
// the RFC 9180 SerializePublicKey output.
func MarshalPublicKey(k *PublicKey) []byte { return k.encode() }

func (k *PublicKey) encode() []byte { return encodeKey(kindPublic, k.kem, k.key.Bytes()) }

func encodeKey(kind byte, kem KEM, raw []byte) []byte {
	out := make([]byte, keyPrefixSize, keyPrefixSize+len(raw))
	out[0], out[1] = keyFormatVersion, kind
	binary.BigEndian.PutUint16(out[2:], kem.ID())
	return append(out, raw...)
}

// Fingerprint is the SHA-256 of the encoded public key. It names the key,
// for instance as the recipient of an encrypted firmware image.
func (k *PublicKey) Fingerprint() [sha256.Size]byte { return sha256.Sum256(k.encode()) }

// Equal reports whether k and other are the same key of the same KEM.
func (k *PublicKey) Equal(other *PublicKey) bool {
	return other != nil && bytes.Equal(k.encode(), other.encode())
}

// decodeKeyPrefix checks the version, kind and KEM of an encoded key and
// returns the KEM and the raw key, whose length must be want(params).
func decodeKeyPrefix(data []byte, kind byte, want func(kemParams) int) (KEM, kemParams, []byte, error) {
	if len(data) < keyPrefixSize {
		return "", kemParams{}, nil, fmt.Errorf("%w: %d bytes", ErrMalformedKey, len(data))
	}
	if data[0] != keyFormatVersion {
		return "", kemParams{}, nil, fmt.Errorf("%w: format version %d, want %d", ErrMalformedKey, data[0], keyFormatVersion)
	}
	if data[1] != kind {
		return "", kemParams{}, nil, fmt.Errorf("%w: %s", ErrMalformedKey, kindMismatch[kind])
	}
	kem, err := KEMFromID(binary.BigEndian.Uint16(data[2:]))
	if err != nil {
		return "", kemParams{}, nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
	}
	p := kems[kem]
	raw := data[keyPrefixSize:]
	if len(raw) != want(p) {
		return "", kemParams{}, nil, fmt.Errorf("%w: %s key of %d bytes, want %d", ErrMalformedKey, kem, len(raw), want(p))
	}
	return kem, p, raw, nil
}

var kindMismatch = map[byte]string{
	kindPublic:  "not a public key",
	kindPrivate: "not a private key",
}

// ParsePublicKey decodes the encoding MarshalPublicKey writes. It accepts
// exactly one length per KEM and refuses keys the KEM rejects (an ML-KEM
// encapsulation key with coefficients out of range, for instance).
func ParsePublicKey(data []byte) (*PublicKey, error) {
	kem, p, raw, err := decodeKeyPrefix(data, kindPublic, func(p kemParams) int { return p.publicSize })
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	key, err := p.hpke().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w: invalid %s key", ErrMalformedKey, kem)
	}
	pub := &PublicKey{kem: kem, key: key}
	if !bytes.Equal(pub.encode(), data) {
		return nil, fmt.Errorf("parse public key: %w: not in canonical form", ErrMalformedKey)
	}
	return pub, nil
}

// ParsePrivateKey decodes the encoding MarshalPrivateKey writes. It accepts
// only the canonical form (a clamped X25519 scalar), so one key has one
// encoding.
func ParsePrivateKey(data []byte) (*PrivateKey, error) {
	kem, p, raw, err := decodeKeyPrefix(data, kindPrivate, func(p kemParams) int { return p.privateSize })
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	key, err := p.hpke().NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w: invalid %s key", ErrMalformedKey, kem)
	}
	again, err := key.Bytes()
	if err != nil || subtle.ConstantTimeCompare(again, raw) != 1 {
		return nil, fmt.Errorf("parse private key: %w: not in canonical form", ErrMalformedKey)
	}
	return newPrivateKey(kem, key), nil
}

// EncodePrivateKeyPEM encodes k as a PEM block of type PEMPrivateKey.
func EncodePrivateKeyPEM(k *PrivateKey) ([]byte, error) {
	der, err := MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMPrivateKey, Bytes: der}), nil
}

// EncodePublicKeyPEM encodes k as a PEM block of type PEMPublicKey.
func EncodePublicKeyPEM(k *PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PEMPublicKey, Bytes: k.encode()})
}

// ParseKeyPEM decodes a PEM file holding exactly one Hallmark KEM key and
// returns a *PrivateKey or a *PublicKey. Unlike OpenSSL it refuses text
// around the block and PEM headers: these files are written by Hallmark,
// and anything else in them is a mistake worth reporting.
func ParseKeyPEM(data []byte) (any, error) {
	if len(data) > MaxKeyPEM {
		return nil, fmt.Errorf("%w: PEM of %d bytes exceeds %d", ErrMalformedKey, len(data), MaxKeyPEM)
	}
	trimmed := bytes.TrimSpace(data)
	block, rest := pem.Decode(trimmed)
	if block == nil || !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return nil, fmt.Errorf("%w: no PEM block %q or %q", ErrMalformedKey, PEMPrivateKey, PEMPublicKey)
	}
	if len(rest) != 0 || len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: PEM headers or data after the key", ErrMalformedKey)
	}
	switch block.Type {
	case PEMPrivateKey:
		return ParsePrivateKey(block.Bytes)
	case PEMPublicKey:
		return ParsePublicKey(block.Bytes)
	}
	return nil, fmt.Errorf("%w: PEM block %q, want %q or %q", ErrMalformedKey, block.Type, PEMPrivateKey, PEMPublicKey)
}

// ParsePrivateKeyPEM decodes a PEMPrivateKey file.
func ParsePrivateKeyPEM(data []byte) (*PrivateKey, error) {
	key, err := ParseKeyPEM(data)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(*PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: found a public key where the private key is needed", ErrMalformedKey)
	}
	return priv, nil
}

// ParsePublicKeyPEM decodes a PEMPublicKey file, or the public half of a
// PEMPrivateKey file.
func ParsePublicKeyPEM(data []byte) (*PublicKey, error) {
	key, err := ParseKeyPEM(data)
	if err != nil {
		return nil, err
	}
	if priv, ok := key.(*PrivateKey); ok {
		return priv.Public(), nil
	}
	return key.(*PublicKey), nil
}
