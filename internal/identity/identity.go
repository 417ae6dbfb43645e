// Package identity owns the device identity: the SHA-256 digest of the DER
// SubjectPublicKeyInfo of a device's enrolment public key, 32 bytes, written
// as 64 lowercase hexadecimal characters. An identity names a device; it
// proves nothing until the device signs a fresh challenge with the key.
package identity

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Size is the length of an identity in bytes.
const Size = sha256.Size

// ErrMalformed reports text that is not an identity.
var ErrMalformed = errors.New("malformed identity")

// ID is a device identity.
type ID [Size]byte

// FromSPKI returns the identity of a DER SubjectPublicKeyInfo. The caller is
// responsible for spki being canonical; FromPublicKey guarantees it.
func FromSPKI(spki []byte) ID {
	return ID(sha256.Sum256(spki))
}

// FromPublicKey returns the identity of pub, hashing its canonical DER
// SubjectPublicKeyInfo.
func FromPublicKey(pub crypto.PublicKey) (ID, error) {
	der, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		return ID{}, fmt.Errorf("identity: %w", err)
	}
	return FromSPKI(der), nil
}

// Parse reads an identity written as exactly 64 lowercase hexadecimal
// characters. Upper case is refused so that every identity has one spelling
// and text comparisons, logs and database keys agree.
func Parse(s string) (ID, error) {
	var id ID
	if len(s) != 2*Size {
		return id, fmt.Errorf("%w: %d characters, want %d lowercase hex characters", ErrMalformed, len(s), 2*Size)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id, fmt.Errorf("%w: character %d is %q, want lowercase hex (0-9, a-f)", ErrMalformed, i+1, rune(c))
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return id, nil
}

// FromBytes returns the identity held in b, which must be exactly Size bytes.
func FromBytes(b []byte) (ID, error) {
	var id ID
	if len(b) != Size {
		return id, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), Size)
	}
	copy(id[:], b)
	return id, nil
}

// String returns the 64-character lowercase hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex characters, for tables and logs where the
// full identity is too wide; it is not unique and must not be used as a key.
func (id ID) Short() string { return id.String()[:12] }

// Equal compares two identities in constant time, so that comparing an
// offered identity with a stored one leaks nothing through timing.
func (id ID) Equal(other ID) bool {
	return subtle.ConstantTimeCompare(id[:], other[:]) == 1
}

// IsZero reports whether id is the zero value, which no key hashes to in
// practice and which marks an unset identity.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with Parse's rules.
func (id *ID) UnmarshalText(text []byte) error {
	parsed, err := Parse(string(text))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}
