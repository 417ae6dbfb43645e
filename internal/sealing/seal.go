package sealing

import (
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors callers branch on.
var (
	// ErrOpen reports sealed data that cannot be opened: the wrong key, a
	// different info or aad than was sealed with, or tampered or truncated
	// data. It deliberately says no more, so that a failed open teaches an
	// attacker nothing about which check failed.
	ErrOpen = errors.New("cannot open sealed data (wrong key or context, or tampered)")
	// ErrWrongKEM reports data sealed to a different KEM than the key's; it
	// is returned together with ErrOpen.
	ErrWrongKEM = errors.New("sealed to a different KEM")
)

// WrapInfo is the HPKE info of Wrap and Unwrap.
const WrapInfo = "hallmark key wrap v1"

// idSize is the KEM identifier that starts sealed data.
const idSize = 2

// The ciphersuite apart from the KEM is fixed: one suite to review, and
// AES-256 keeps a 128-bit margin against Grover for the payloads sealed
// under the post-quantum KEMs.
func kdf() hpke.KDF   { return hpke.HKDFSHA256() }
func aead() hpke.AEAD { return hpke.AES256GCM() }

// Seal encrypts plaintext to pub. info names the use (for instance
// "hallmark firmware payload v1") and must be the same when opening; aad is
// authenticated but not encrypted. The result is self-describing:
// the KEM's HPKE identifier (big-endian uint16), the encapsulated key, then
// the ciphertext and its 16-byte tag.
func Seal(pub *PublicKey, info, aad, plaintext []byte) ([]byte, error) {
	s, err := NewSealer(pub, info)
	if err != nil {
		return nil, err
	}
	ct, err := s.Seal(aad, plaintext)
	if err != nil {
		return nil, err
	}
	out := make([]byte, idSize, idSize+len(s.enc)+len(ct))
	binary.BigEndian.PutUint16(out, pub.kem.ID())
	out = append(out, s.enc...)
	return append(out, ct...), nil
}

// Open decrypts data sealed by Seal. Any failure to authenticate is
// ErrOpen; data sealed to another KEM is refused with ErrWrongKEM as well.
func Open(priv *PrivateKey, info, aad, sealed []byte) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("open: no private key")
	}
	if len(sealed) < idSize {
		return nil, ErrOpen
	}
	kem, err := KEMFromID(binary.BigEndian.Uint16(sealed))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	if kem != priv.kem {
		return nil, fmt.Errorf("%w: %w: data is sealed to %s, the key is %s", ErrOpen, ErrWrongKEM, kem, priv.kem)
	}
	rest := sealed[idSize:]
	encSize := kem.EncapsulationSize()
	if len(rest) < encSize+Overhead {
		return nil, ErrOpen
	}
	return OpenDetached(priv, info, rest[:encSize], aad, rest[encSize:])
}

// Sealer seals one message whose aad must name the encapsulated key, as a
// file format does whose header carries the encapsulation and is itself
// authenticated: NewSealer fixes the encapsulation first, the caller
// builds the aad around it, then calls Seal once.
type Sealer struct {
	enc    []byte
	sender *hpke.Sender
	used   bool
}

// NewSealer encapsulates a fresh key to pub for one message under info.
func NewSealer(pub *PublicKey, info []byte) (*Sealer, error) {
	if pub == nil {
		return nil, errors.New("seal: no public key")
	}
	enc, sender, err := hpke.NewSender(pub.key, kdf(), aead(), info)
	if err != nil {
		return nil, fmt.Errorf("seal to %s key: %w", pub.kem, err)
	}
	return &Sealer{enc: enc, sender: sender}, nil
}

// Encapsulation returns the encapsulated key the recipient needs to open
// the message (its size is the KEM's EncapsulationSize).
func (s *Sealer) Encapsulation() []byte { return append([]byte(nil), s.enc...) }

// Seal encrypts plaintext, authenticating aad. It may be called only once:
// OpenDetached opens the first message of a context, and a second one
// would need a different nonce.
func (s *Sealer) Seal(aad, plaintext []byte) ([]byte, error) {
	if s.used {
		return nil, errors.New("seal: a Sealer seals one message only")
	}
	s.used = true
	ct, err := s.sender.Seal(aad, plaintext)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return ct, nil
}

// OpenDetached opens a ciphertext made by a Sealer whose encapsulated key
// enc is carried apart from it. Any failure is ErrOpen.
func OpenDetached(priv *PrivateKey, info, enc, aad, ciphertext []byte) ([]byte, error) {
	if priv == nil || len(enc) != priv.kem.EncapsulationSize() || len(ciphertext) < Overhead {
		return nil, ErrOpen
	}
	r, err := hpke.NewRecipient(enc, priv.key, kdf(), aead(), info)
	if err != nil {
		return nil, ErrOpen
	}
	pt, err := r.Open(aad, ciphertext)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Wrap seals a secret, such as a device key being injected, to k under
// the info WrapInfo.
func (k *PublicKey) Wrap(plaintext []byte) ([]byte, error) {
	return Seal(k, []byte(WrapInfo), nil, plaintext)
}

// Unwrap opens what Wrap sealed to k's public key.
func (k *PrivateKey) Unwrap(wrapped []byte) ([]byte, error) {
	return Open(k, []byte(WrapInfo), nil, wrapped)
}
