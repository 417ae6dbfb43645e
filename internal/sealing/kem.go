// Package sealing owns public-key encryption for the factory: the KEM key
// pairs Hallmark encrypts to (a device class, a station, a key-injection
// target) and sealing and opening data with HPKE (RFC 9180). The
// ciphersuite is fixed to HKDF-SHA256 and AES-256-GCM; only the KEM varies,
// and the default is the hybrid ML-KEM-768 + X25519 (X-Wing), so that data
// sealed today stays confidential against a future quantum attacker as long
// as either component holds.
//
// Keys are encoded in a small Hallmark format (see ParsePublicKey) because
// there is no settled PKIX encoding for the hybrid KEM yet.
package sealing

import (
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
	"fmt"
	"strings"
)

// KEM names a key encapsulation mechanism on the command line and in APIs.
type KEM string

// The KEMs Hallmark seals to.
const (
	// MLKEM768X25519 is the hybrid of ML-KEM-768 and X25519 (X-Wing): secure
	// if either holds.
	MLKEM768X25519 KEM = "ml-kem-768-x25519"
	// MLKEM768 is ML-KEM-768 (FIPS 203) alone.
	MLKEM768 KEM = "ml-kem-768"
	// X25519 is DHKEM(X25519, HKDF-SHA256): small, classical only.
	X25519 KEM = "x25519"
	// DefaultKEM is the KEM used when the caller does not choose one.
	DefaultKEM = MLKEM768X25519
)

// Overhead is how many bytes sealing adds to the plaintext besides the
// encapsulation: the AES-256-GCM tag.
const Overhead = 16

// kemParams records what Hallmark needs to know about a KEM beyond what
// crypto/hpke exposes: the wire sizes, so parsers can check exact lengths
// before handing bytes to the KEM.
type kemParams struct {
	hpke                             func() hpke.KEM
	id                               uint16
	privateSize, publicSize, encSize int
}

var kems = map[KEM]kemParams{
	MLKEM768X25519: {hpke: hpke.MLKEM768X25519, id: 0x647a, privateSize: 32, publicSize: 1216, encSize: 1120},
	MLKEM768:       {hpke: hpke.MLKEM768, id: 0x0041, privateSize: 64, publicSize: 1184, encSize: 1088},
	X25519:         {hpke: func() hpke.KEM { return hpke.DHKEM(ecdh.X25519()) }, id: 0x0020, privateSize: 32, publicSize: 32, encSize: 32},
}

// ErrUnknownKEM reports a KEM name or identifier Hallmark does not support.
var ErrUnknownKEM = errors.New("unknown KEM")

// Lookup returns the KEM named name (case-insensitive; "x-wing" and
// "xwing" name the hybrid).
func Lookup(name string) (KEM, error) {
	k := KEM(strings.ToLower(strings.TrimSpace(name)))
	if k == "x-wing" || k == "xwing" {
		k = MLKEM768X25519
	}
	if _, ok := kems[k]; !ok {
		return "", fmt.Errorf("%w %q (known: %s)", ErrUnknownKEM, name, strings.Join(Names(), ", "))
	}
	return k, nil
}

// Names returns the names of every KEM, the default first.
func Names() []string {
	return []string{string(MLKEM768X25519), string(MLKEM768), string(X25519)}
}

// KEMFromID returns the KEM with the HPKE identifier id (RFC 9180 and
// draft-ietf-hpke-pq), as carried in sealed data and image headers.
func KEMFromID(id uint16) (KEM, error) {
	for k, p := range kems {
		if p.id == id {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: identifier 0x%04x", ErrUnknownKEM, id)
}

// ID returns the HPKE identifier of k, or 0 for an unknown KEM.
func (k KEM) ID() uint16 { return kems[k].id }

// EncapsulationSize is the size of the encapsulated key k produces, or 0
// for an unknown KEM.
func (k KEM) EncapsulationSize() int { return kems[k].encSize }

func (k KEM) params() (kemParams, error) {
	p, ok := kems[k]
	if !ok {
		return kemParams{}, fmt.Errorf("%w %q", ErrUnknownKEM, string(k))
	}
	return p, nil
}
