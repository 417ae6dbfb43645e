package migration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Device-facing routes, both under mutual TLS with the device's current
// certificate (as /v1/device/credentials): the certificate of the OLD
// identity, the one that migrates.
const (
	// PathMigrateChallenge: POST with an empty body (or {}); 200 with a
	// ChallengeResponse.
	PathMigrateChallenge = "/v1/device/migrate/challenge"
	// PathMigrate: POST a Request; 200 with the new identity's
	// Credentials.
	PathMigrate = "/v1/device/migrate"
)

// Limits of the messages.
const (
	// ChallengeTTL is how long a migration challenge can be answered: two
	// signatures and a certificate request on a slow chip, with room.
	ChallengeTTL = 2 * time.Minute
	// MaxCSR bounds the certificate request (onboarding's bound).
	MaxCSR = onboarding.MaxCSR
	// MaxRequestBody bounds a Request's JSON: the largest proof, a
	// base64 CSR at its bound and the framing.
	MaxRequestBody = continuity.MaxProofSize + (MaxCSR+2)/3*4 + 1<<10
)

// CSRBindingContext domain-separates the certificate request's binding
// to a migration challenge from onboarding's and renewal's bindings.
const CSRBindingContext = "hallmark migration csr binding v1"

// Errors of the exchange that callers branch on.
var (
	// ErrNoMigration is an Authorizer's answer for a device that has no
	// migration open now.
	ErrNoMigration = errors.New("no migration open for this device")
	// ErrMalformed reports a request that is not well formed.
	ErrMalformed = errors.New("malformed migration request")
	// ErrTooLarge reports a request body over MaxRequestBody.
	ErrTooLarge = errors.New("migration request too large")
)

// Authorizer says whether a device may migrate now and to which suite
// (the campaign service: an open migration assignment whose update has
// booted). It answers ErrNoMigration (wrapped or not) when the device
// has none open.
type Authorizer interface {
	MigrationAllowed(ctx context.Context, id identity.ID) (sigalg.ID, error)
}

// Completion is told of every committed migration, old identity first
// (the campaign service marks the device migrated). An error is logged;
// the migration stands.
type Completion interface {
	MigrationCompleted(ctx context.Context, old, new identity.ID) error
}

// ChallengeResponse is the platform's challenge for one migration.
type ChallengeResponse struct {
	ChallengeID string    `json:"challenge_id"` // 32 lowercase hex characters
	Nonce       []byte    `json:"nonce"`        // continuity.NonceSize bytes, base64
	ServerName  string    `json:"server_name"`
	ExpiresAt   time.Time `json:"expires_at"`
	// TargetAlgorithm is the suite the device's new enrolment key must be
	// of; a proof for another is refused.
	TargetAlgorithm sigalg.ID `json:"target_algorithm"`
}

// Continuity returns the challenge the device signs (continuity.Sign).
func (r ChallengeResponse) Continuity() (continuity.Challenge, error) {
	var ch continuity.Challenge
	id, err := parseChallengeID(r.ChallengeID)
	if err != nil {
		return ch, err
	}
	ch = continuity.Challenge{ID: id, Nonce: bytes.Clone(r.Nonce), ServerName: r.ServerName}
	if len(ch.Nonce) < continuity.MinNonce || len(ch.Nonce) > continuity.MaxNonce ||
		ch.ServerName == "" || len(ch.ServerName) > continuity.MaxServerName {
		return continuity.Challenge{}, fmt.Errorf("%w: challenge nonce or server name out of bounds", ErrMalformed)
	}
	return ch, nil
}

// Request answers a migration challenge.
//
// The CSR is for the operational key the new identity's certificate will
// certify. It names the NEW identity as its one common name and carries
// CSRBinding(challenge, new identity) as its challengePassword. The
// operational key may stay the one the device uses now: it is the TLS key,
// which stays classical whatever the enrolment key is (docs/migration.md,
// "What is post-quantum after a migration"), and a device whose stack
// derives it from its root of trust (a puf chip) cannot change it without
// a firmware change. A kept key passes from the old identity to the new
// one in the migration's transaction, so it is still certified for one
// live device only; a key certified for any other device is refused.
type Request struct {
	ChallengeID string            `json:"challenge_id"`
	Proof       *continuity.Proof `json:"proof"` // continuity's wire JSON
	CSR         []byte            `json:"csr"`   // DER, base64
}

// Response is the new identity's credentials, as onboarding issues them.
type Response = onboarding.Credentials

// CSRBinding is the challengePassword of a migration's certificate
// request: hex(SHA-256(CSRBindingContext ‖ 0x00 ‖ challenge ID ‖
// u16(len(nonce)) ‖ nonce ‖ u16(len(server name)) ‖ server name ‖ new
// identity)). It ties the request to this challenge and to the identity
// it certifies, so a request cannot be lifted into another exchange.
func CSRBinding(ch continuity.Challenge, newID identity.ID) string {
	h := sha256.New()
	h.Write([]byte(CSRBindingContext))
	h.Write([]byte{0})
	h.Write(ch.ID[:])
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(ch.Nonce))))
	h.Write(ch.Nonce)
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(ch.ServerName))))
	h.Write([]byte(ch.ServerName))
	h.Write(newID[:])
	return hex.EncodeToString(h.Sum(nil))
}

// ReadRequest reads one Request from r, reading at most MaxRequestBody+1
// bytes.
func ReadRequest(r io.Reader) (*Request, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequestBody+1))
	if err != nil {
		return nil, fmt.Errorf("migration: read request: %w", err)
	}
	return ParseRequest(data)
}

// ParseRequest decodes a Request: exactly one object, no unknown member,
// nothing after it, at most MaxRequestBody bytes; the proof read by
// continuity's strict rules, the challenge ID in lowercase hex and equal
// to the proof's, a CSR of 1 to MaxCSR bytes.
func ParseRequest(data []byte) (*Request, error) {
	if len(data) > MaxRequestBody {
		return nil, fmt.Errorf("migration: %w: over %d bytes", ErrTooLarge, MaxRequestBody)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("migration: %w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("migration: %w: data after the request", ErrMalformed)
	}
	if err := req.Check(); err != nil {
		return nil, err
	}
	return &req, nil
}

// Check applies a request's rules to its fields.
func (r *Request) Check() error {
	id, err := parseChallengeID(r.ChallengeID)
	switch {
	case err != nil:
		return fmt.Errorf("migration: %w", err)
	case r.Proof == nil:
		return fmt.Errorf("migration: %w: no proof", ErrMalformed)
	case id != r.Proof.ChallengeID:
		return fmt.Errorf("migration: %w: challenge_id is not the proof's", ErrMalformed)
	case len(r.CSR) == 0 || len(r.CSR) > MaxCSR:
		return fmt.Errorf("migration: %w: csr of %d bytes (1 to %d)", ErrMalformed, len(r.CSR), MaxCSR)
	}
	return nil
}

func parseChallengeID(s string) ([continuity.ChallengeIDSize]byte, error) {
	var id [continuity.ChallengeIDSize]byte
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != len(id) || hex.EncodeToString(raw) != s {
		return id, fmt.Errorf("%w: challenge_id must be %d lowercase hex characters", ErrMalformed, 2*len(id))
	}
	copy(id[:], raw)
	return id, nil
}
