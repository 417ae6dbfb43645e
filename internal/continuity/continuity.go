// Package continuity owns the continuity proof of a post-quantum migration:
// the message a device signs with its old enrolment key and with its new
// one to show a fresh platform challenge that both keys are held by the
// same device, the device side that makes the proof (Sign), the platform
// side that checks it (Verify) against the old key it has on record and a
// migration Policy, and the proof's JSON wire format (ParseProof,
// MarshalJSON). It keeps no state: issuing and consuming the challenge,
// recording the lineage and refusing a superseded identity belong to the
// platform (docs/migration.md).
package continuity

import (
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Limits of a challenge and a proof.
const (
	// ChallengeIDSize is the size of a challenge's identifier.
	ChallengeIDSize = 16
	// MinNonce and MaxNonce bound the challenge's nonce: at least 128
	// bits of the platform's randomness make each proof fresh.
	MinNonce = 16
	MaxNonce = 64
	// NonceSize is the nonce NewChallenge issues.
	NonceSize = 32
	// MaxServerName bounds the server name bound into the message.
	MaxServerName = 255
	// MaxPublicKey bounds the new key's DER SubjectPublicKeyInfo: an
	// ML-DSA-87 key is 2,592 bytes, 2,614 with its SPKI framing.
	MaxPublicKey = 2614
	// MaxSignature bounds each signature: ML-DSA-87's is 4,627 bytes.
	MaxSignature = 4627
)

// Errors callers branch on. Every refusal by Verify wraps exactly one of
// them, and none carries key material or a signature.
var (
	// ErrMalformed reports a proof or challenge that is not well formed:
	// bad encoding, wrong sizes, an unknown algorithm, a missing key.
	ErrMalformed = errors.New("malformed continuity proof")
	// ErrChallengeMismatch reports a proof made for another challenge
	// than the one it is checked against: a replay, or a proof relayed
	// from another exchange.
	ErrChallengeMismatch = errors.New("continuity proof answers another challenge")
	// ErrIdentityMismatch reports a proof whose identities or algorithms
	// are not those of its keys: the old identity is not the device on
	// record, or the new identity is not SHA-256 of the new key's SPKI.
	ErrIdentityMismatch = errors.New("continuity proof identity mismatch")
	// ErrNewKeyRefused reports a new public key that does not parse or
	// fails sigalg's key policy (a weak key).
	ErrNewKeyRefused = errors.New("new enrolment key refused")
	// ErrSameKey reports a "migration" to the key the device already has.
	ErrSameKey = errors.New("new enrolment key is the old one")
	// ErrMigrationNotAllowed reports a pair of algorithms the policy
	// refuses, such as a downgrade from ML-DSA to ECDSA.
	ErrMigrationNotAllowed = errors.New("migration between these algorithms not allowed")
	// ErrOldSignature reports that the old key's signature does not verify.
	ErrOldSignature = errors.New("old key's continuity signature invalid")
	// ErrNewSignature reports that the new key's signature does not verify.
	ErrNewSignature = errors.New("new key's continuity signature invalid")
)

// Challenge is the platform's fresh challenge for one migration. The
// platform issues it (random ID and nonce, its own server name), keeps it
// until it expires and consumes it once; Verify checks a proof against it.
type Challenge struct {
	ID         [ChallengeIDSize]byte
	Nonce      []byte
	ServerName string
}

// Proof is a continuity proof: the old enrolment key and the new one each
// signed Message for their role.
type Proof struct {
	// ChallengeID names the challenge the proof answers; the nonce and
	// server name are the platform's, not sent back.
	ChallengeID  [ChallengeIDSize]byte
	OldIdentity  identity.ID
	OldAlgorithm sigalg.ID
	NewIdentity  identity.ID
	NewAlgorithm sigalg.ID
	// NewPublicKey is the new enrolment key's DER SubjectPublicKeyInfo;
	// NewIdentity is its SHA-256.
	NewPublicKey []byte
	OldSignature []byte
	NewSignature []byte
}

// Predecessor is what the platform has on record of the device that
// migrates: its enrolment algorithm and public key.
type Predecessor struct {
	Algorithm sigalg.ID
	// PublicKey is the DER SubjectPublicKeyInfo recorded at registration;
	// the device's identity is its SHA-256.
	PublicKey []byte
}

// Successor is what a verified proof establishes: the device's new
// enrolment identity and key.
type Successor struct {
	Identity  identity.ID
	Algorithm sigalg.ID
	PublicKey crypto.PublicKey
	// SPKI is the new key's DER SubjectPublicKeyInfo, as the platform
	// records it.
	SPKI []byte
}

// Sign makes the device's continuity proof for ch: the old key and the new
// key each sign the message of their role. Either key may be any
// crypto.Signer of a sigalg suite (a key store's, a PUF-derived one). Sign
// applies no migration policy; the platform does.
func Sign(ch Challenge, oldKey, newKey crypto.Signer) (*Proof, error) {
	if err := ch.check(); err != nil {
		return nil, fmt.Errorf("continuity: sign: %w", err)
	}
	if oldKey == nil || newKey == nil {
		return nil, fmt.Errorf("continuity: sign: %w: a key is missing", ErrMalformed)
	}
	oldSuite, oldSPKI, err := describe(oldKey)
	if err != nil {
		return nil, fmt.Errorf("continuity: sign: old key: %w", err)
	}
	newSuite, newSPKI, err := describe(newKey)
	if err != nil {
		return nil, fmt.Errorf("continuity: sign: new key: %w", err)
	}
	p := &Proof{
		ChallengeID:  ch.ID,
		OldIdentity:  identity.FromSPKI(oldSPKI),
		OldAlgorithm: oldSuite.ID(),
		NewIdentity:  identity.FromSPKI(newSPKI),
		NewAlgorithm: newSuite.ID(),
		NewPublicKey: newSPKI,
	}
	if p.OldIdentity.Equal(p.NewIdentity) {
		return nil, fmt.Errorf("continuity: sign: %w", ErrSameKey)
	}
	if p.OldSignature, err = oldSuite.Sign(oldKey, message(roleOld, ch, p)); err != nil {
		return nil, fmt.Errorf("continuity: sign with the old key: %w", err)
	}
	if p.NewSignature, err = newSuite.Sign(newKey, message(roleNew, ch, p)); err != nil {
		return nil, fmt.Errorf("continuity: sign with the new key: %w", err)
	}
	return p, nil
}

// describe returns a signer's suite and canonical SPKI.
func describe(key crypto.Signer) (sigalg.Suite, []byte, error) {
	suite, err := sigalg.SuiteOf(key)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return suite, spki, nil
}

// NewChallenge draws a fresh challenge for the platform named serverName
// from rand (crypto/rand.Reader in production).
func NewChallenge(rand io.Reader, serverName string) (Challenge, error) {
	ch := Challenge{Nonce: make([]byte, NonceSize), ServerName: serverName}
	if _, err := io.ReadFull(rand, ch.ID[:]); err != nil {
		return Challenge{}, fmt.Errorf("continuity: challenge ID: %w", err)
	}
	if _, err := io.ReadFull(rand, ch.Nonce); err != nil {
		return Challenge{}, fmt.Errorf("continuity: challenge nonce: %w", err)
	}
	if err := ch.check(); err != nil {
		return Challenge{}, fmt.Errorf("continuity: %w", err)
	}
	return ch, nil
}

func (ch Challenge) check() error {
	switch {
	case len(ch.Nonce) < MinNonce || len(ch.Nonce) > MaxNonce:
		return fmt.Errorf("%w: challenge nonce of %d bytes, want %d to %d", ErrMalformed, len(ch.Nonce), MinNonce, MaxNonce)
	case ch.ServerName == "" || len(ch.ServerName) > MaxServerName:
		return fmt.Errorf("%w: server name of %d bytes, want 1 to %d", ErrMalformed, len(ch.ServerName), MaxServerName)
	case ch.ID == [ChallengeIDSize]byte{}:
		return fmt.Errorf("%w: zero challenge ID", ErrMalformed)
	}
	return nil
}
