// Package sigalg owns Hallmark's signature suites: ECDSA P-256 with SHA-256,
// Ed25519 and ML-DSA-44/65/87 (FIPS 204). Each suite generates keys, derives
// them deterministically from a 32-byte seed, signs and verifies whole
// messages, and the package encodes keys as PKIX SubjectPublicKeyInfo and
// PKCS #8 (DER and PEM) with the standard object identifiers. Every key it
// parses passes its key policy (CheckPublicKey): keys anyone can sign for,
// such as an ML-DSA key with t1 = 0 or the P-256 base point, are refused.
//
// Suites sign whole messages and never assume a pre-hash: Ed25519 and ML-DSA
// hash internally, and ECDSA's SHA-256 is part of the suite, not the caller's
// job. Callers domain-separate what they sign.
package sigalg

import (
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// ID names a signature suite on the command line, in manifests and in APIs.
type ID string

// The suites Hallmark supports.
const (
	ECDSAP256 ID = "ecdsa-p256"
	Ed25519   ID = "ed25519"
	MLDSA44   ID = "ml-dsa-44"
	MLDSA65   ID = "ml-dsa-65"
	MLDSA87   ID = "ml-dsa-87"
)

// SeedSize is the size of the seed every suite derives a key pair from.
const SeedSize = 32

// Errors callers branch on.
var (
	// ErrUnknownAlgorithm reports a suite name, OID or key type Hallmark does
	// not support.
	ErrUnknownAlgorithm = errors.New("unknown signature algorithm")
	// ErrMalformedKey reports a key encoding that cannot be parsed or is not
	// in canonical form.
	ErrMalformedKey = errors.New("malformed key")
	// ErrWeakKey reports a key that parses but must not be trusted because
	// its private key is public or follows from the public key: an ML-DSA
	// key with t1 = 0, a small multiple of a base point, an Ed25519 key of
	// small order (CheckPublicKey).
	ErrWeakKey = errors.New("weak key")
	// ErrInvalidSignature reports a signature that does not verify.
	ErrInvalidSignature = errors.New("invalid signature")
)

// Suite is one signature algorithm. Keys are the standard library's types
// (*ecdsa.PrivateKey, ed25519.PrivateKey) or circl's ML-DSA types; all
// private keys implement crypto.Signer.
type Suite interface {
	// ID is the suite's stable name.
	ID() ID
	// OID is the algorithm identifier of the suite's public keys in
	// SubjectPublicKeyInfo and of its signatures in X.509.
	OID() asn1.ObjectIdentifier
	// GenerateKey makes a fresh key pair from rand.
	GenerateKey(rand io.Reader) (crypto.Signer, error)
	// DeriveKey makes the key pair determined by a SeedSize-byte seed.
	DeriveKey(seed []byte) (crypto.Signer, error)
	// Sign signs the whole message msg.
	Sign(key crypto.Signer, msg []byte) ([]byte, error)
	// Verify reports nil if sig is a valid signature of msg under pub, and
	// an error wrapping ErrInvalidSignature otherwise.
	Verify(pub crypto.PublicKey, msg, sig []byte) error
	// SignatureSize is the largest signature the suite produces.
	SignatureSize() int
}

var registry = map[ID]Suite{}

func register(s Suite) { registry[s.ID()] = s }

// Lookup returns the suite named id. Names are case-insensitive and accept
// a few common spellings ("p256", "mldsa65").
func Lookup(id string) (Suite, error) {
	name := strings.ToLower(strings.TrimSpace(id))
	if alias, ok := aliases[name]; ok {
		name = string(alias)
	}
	s, ok := registry[ID(name)]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownAlgorithm, id, strings.Join(Names(), ", "))
	}
	return s, nil
}

var aliases = map[string]ID{
	"p256": ECDSAP256, "p-256": ECDSAP256, "ecdsa": ECDSAP256, "es256": ECDSAP256,
	"ecdsa-p256-sha256": ECDSAP256,
	"mldsa44":           MLDSA44, "mldsa65": MLDSA65, "mldsa87": MLDSA87,
}

// All returns every suite, sorted by name.
func All() []Suite {
	out := make([]Suite, 0, len(registry))
	for _, s := range registry {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}

// Names returns the names of every suite, sorted.
func Names() []string {
	var names []string
	for _, s := range All() {
		names = append(names, string(s.ID()))
	}
	return names
}

// Suite returns the suite id names. Like Lookup it accepts any case and
// the common spellings, so an ID read from configuration needs no
// conversion; an unknown or empty ID is an error wrapping
// ErrUnknownAlgorithm that lists the known names.
func (id ID) Suite() (Suite, error) { return Lookup(string(id)) }

// SuiteOf returns the suite of a public or private key. A key of no
// suite, nil or a typed nil included, is an error wrapping
// ErrUnknownAlgorithm, never a nil Suite with a nil error. Where the key
// comes from parsing, ParsePublicKeyWithSuite and ParsePrivateKeyWithSuite
// return the suite with it.
func SuiteOf(key any) (Suite, error) {
	if isNil(key) {
		return nil, fmt.Errorf("%w: no key", ErrUnknownAlgorithm)
	}
	if signer, ok := key.(crypto.Signer); ok {
		key = signer.Public()
		if isNil(key) {
			return nil, fmt.Errorf("%w: signer %T has no public key", ErrUnknownAlgorithm, signer)
		}
	}
	for _, s := range All() {
		if s.(interface{ owns(crypto.PublicKey) bool }).owns(key) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: key type %T", ErrUnknownAlgorithm, key)
}

// isNil reports a nil key, or a typed nil one (a nil *ecdsa.PublicKey in
// an interface), whose methods would panic.
func isNil(key any) bool {
	if key == nil {
		return true
	}
	switch v := reflect.ValueOf(key); v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Func:
		return v.IsNil()
	}
	return false
}

func checkSeed(seed []byte) error {
	if len(seed) != SeedSize {
		return fmt.Errorf("derive key: seed is %d bytes, want %d", len(seed), SeedSize)
	}
	return nil
}

// Sign signs the whole message msg with key through the suite its public key
// belongs to; key may be any crypto.Signer, such as a key manager's.
func Sign(key crypto.Signer, msg []byte) ([]byte, error) {
	suite, err := SuiteOf(key)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return suite.Sign(key, msg)
}
