package migration

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
)

// An inject-class chip cannot make its new enrolment key, so the platform's
// key store makes it and seals it to the chip's transport key, as the
// station did in the factory (docs/migration.md, "Inject-class chips").
// The platform does not know that transport key (manifests do not carry
// it), so the chip presents it in its challenge request, signed by its
// current enrolment key: a relay cannot put its own transport key in the
// old key's place, and the platform seals only to a key the recorded
// enrolment key vouches for.

// KeyWrapInfo is the HPKE info of a migration key sealed to a chip's
// transport key. It is the device's (device.MigrationKeyInfo) and differs
// from the factory's sealing.WrapInfo, so a key sealed for one cannot be
// replayed as the other.
const KeyWrapInfo = "hallmark migration key wrap v1"

// TransportKeyContext domain-separates the old enrolment key's signature
// over the transport key from every other proof the key makes.
const TransportKeyContext = "hallmark migration transport key v1"

// MaxChallengeRequest bounds a ChallengeRequest's JSON: a transport key
// (ML-KEM-768 + X25519, about 1.2 KB), a signature of the largest suite
// (ML-DSA-87, 4,627 bytes), both in base64, and the framing.
const MaxChallengeRequest = 16 << 10

// Bounds of the challenge request's fields, before they are parsed.
const (
	maxTransportKey = 4 << 10
	maxSignature    = 4627
)

// injectedNonceSize is the nonce of an injected key's challenge: the
// usual random nonce, then the identity of the key the platform sealed.
// The nonce is signed by both keys in the continuity proof, so the proof
// itself says which key the platform gave out, and the platform checks
// that it is the new key the proof names.
const injectedNonceSize = continuity.NonceSize + identity.Size

// ChallengeRequest is the body of a migration challenge request. A puf
// or keygen chip sends none (or {}); an inject chip sends its transport
// key, signed by its current enrolment key (TransportKeyMessage).
type ChallengeRequest struct {
	// TransportKey is sealing.MarshalPublicKey of the chip's transport key.
	TransportKey []byte `json:"transport_key,omitempty"`
	// TransportKeySignature signs identity.ProofMessage(
	// TransportKeyContext, TransportKeyMessage(server name, transport
	// key), old identity) with the old enrolment key.
	TransportKeySignature []byte `json:"transport_key_signature,omitempty"`
}

// TransportKeyMessage is the body an inject chip's old enrolment key signs
// under TransportKeyContext: u16(len(server name)) ‖ server name ‖
// transport key. The server name keeps a signature made for one platform
// from being shown to another.
func TransportKeyMessage(serverName string, transportKey []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(serverName)))
	b = append(b, serverName...)
	return append(b, transportKey...)
}

// ReadChallengeRequest reads a challenge request body of at most
// MaxChallengeRequest bytes; an empty body is the empty request.
func ReadChallengeRequest(r io.Reader) (*ChallengeRequest, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxChallengeRequest+1))
	if err != nil {
		return nil, fmt.Errorf("migration: read challenge request: %w", err)
	}
	return ParseChallengeRequest(data)
}

// ParseChallengeRequest decodes a challenge request: empty, or exactly one
// object with no unknown member and nothing after it; a transport key and
// its signature come together, each within its bound, and the key parses.
func ParseChallengeRequest(data []byte) (*ChallengeRequest, error) {
	if len(data) > MaxChallengeRequest {
		return nil, fmt.Errorf("migration: %w: challenge request over %d bytes", ErrTooLarge, MaxChallengeRequest)
	}
	var req ChallengeRequest
	if len(bytes.TrimSpace(data)) == 0 {
		return &req, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("migration: %w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("migration: %w: data after the challenge request", ErrMalformed)
	}
	if err := req.Check(); err != nil {
		return nil, err
	}
	return &req, nil
}

// Check applies the challenge request's rules to its fields.
func (r *ChallengeRequest) Check() error {
	switch {
	case len(r.TransportKey) == 0 && len(r.TransportKeySignature) == 0:
		return nil
	case len(r.TransportKey) == 0 || len(r.TransportKeySignature) == 0:
		return fmt.Errorf("migration: %w: a transport key and its signature come together", ErrMalformed)
	case len(r.TransportKey) > maxTransportKey || len(r.TransportKeySignature) > maxSignature:
		return fmt.Errorf("migration: %w: transport key or signature over its bound", ErrMalformed)
	}
	if _, err := sealing.ParsePublicKey(r.TransportKey); err != nil {
		return fmt.Errorf("migration: %w: transport key: %v", ErrMalformed, err)
	}
	return nil
}

// SealedKeyIdentity is the identity of the key the platform sealed into
// an injected challenge, read from its nonce; false for a challenge that
// carries no sealed key. The device checks it against the key it opened
// before proving, the platform against the proof's new identity.
func (r ChallengeResponse) SealedKeyIdentity() (identity.ID, bool) {
	if len(r.SealedKey) == 0 {
		return identity.ID{}, false
	}
	return injectedIdentity(r.Nonce)
}

func injectedIdentity(nonce []byte) (identity.ID, bool) {
	var id identity.ID
	if len(nonce) != injectedNonceSize {
		return id, false
	}
	copy(id[:], nonce[continuity.NonceSize:])
	return id, true
}

// sameIdentity compares two identities in constant time; neither is
// secret, but it costs nothing.
func sameIdentity(a, b identity.ID) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }
