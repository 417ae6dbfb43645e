package continuity

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Policy is the platform's rule on which migrations it accepts.
type Policy struct {
	// Allowed reports whether a device may move from one enrolment
	// algorithm to another; nil is DefaultAllowed.
	Allowed func(from, to sigalg.ID) bool
}

// strength orders the suites by the security category their keys give:
// the classical suites are broken by a quantum computer, ML-DSA-44, -65
// and -87 are NIST categories 2, 3 and 5.
var strength = map[sigalg.ID]int{
	sigalg.ECDSAP256: 0,
	sigalg.Ed25519:   0,
	sigalg.MLDSA44:   2,
	sigalg.MLDSA65:   3,
	sigalg.MLDSA87:   5,
}

// DefaultAllowed accepts a migration to ML-DSA-65 or ML-DSA-87 from a
// strictly weaker suite: ECDSA P-256 or Ed25519 to either, ML-DSA-44 to
// either, ML-DSA-65 to ML-DSA-87. It refuses every downgrade, every move
// between classical suites, a re-key within one suite (a rotation, not a
// migration) and a move to ML-DSA-44, below the category the platform's
// post-quantum products use.
func DefaultAllowed(from, to sigalg.ID) bool {
	if to != sigalg.MLDSA65 && to != sigalg.MLDSA87 {
		return false
	}
	f, known := strength[from]
	return known && f < strength[to]
}

func (pol Policy) allowed(from, to sigalg.ID) bool {
	if pol.Allowed == nil {
		return DefaultAllowed(from, to)
	}
	return pol.Allowed(from, to)
}

// Verify checks a continuity proof against the challenge the platform
// issued and the device's recorded enrolment key, and returns the device's
// new identity and key. The platform must have looked ch up by
// p.ChallengeID, and must consume it once whatever Verify answers.
//
// Checks run cheapest first: form, challenge, identities, policy, then the
// old key's signature and the new key's. Each refusal wraps one of the
// package's errors.
func Verify(p *Proof, ch Challenge, old Predecessor, pol Policy) (Successor, error) {
	if p == nil {
		return Successor{}, fmt.Errorf("continuity: %w: no proof", ErrMalformed)
	}
	if err := ch.check(); err != nil {
		return Successor{}, fmt.Errorf("continuity: challenge: %w", err)
	}
	oldSuite, newSuite, err := p.check()
	if err != nil {
		return Successor{}, fmt.Errorf("continuity: %w", err)
	}
	if subtle.ConstantTimeCompare(p.ChallengeID[:], ch.ID[:]) != 1 {
		return Successor{}, fmt.Errorf("continuity: %w", ErrChallengeMismatch)
	}
	oldPub, err := checkOld(p, oldSuite, old)
	if err != nil {
		return Successor{}, fmt.Errorf("continuity: %w", err)
	}
	succ, err := checkNew(p, newSuite)
	if err != nil {
		return Successor{}, fmt.Errorf("continuity: %w", err)
	}
	if p.OldIdentity.Equal(p.NewIdentity) {
		return Successor{}, fmt.Errorf("continuity: %w", ErrSameKey)
	}
	if !pol.allowed(p.OldAlgorithm, p.NewAlgorithm) {
		return Successor{}, fmt.Errorf("continuity: %w: %s to %s", ErrMigrationNotAllowed, p.OldAlgorithm, p.NewAlgorithm)
	}
	if oldSuite.Verify(oldPub, message(roleOld, ch, p), p.OldSignature) != nil {
		return Successor{}, fmt.Errorf("continuity: %w", ErrOldSignature)
	}
	if newSuite.Verify(succ.PublicKey, message(roleNew, ch, p), p.NewSignature) != nil {
		return Successor{}, fmt.Errorf("continuity: %w", ErrNewSignature)
	}
	return succ, nil
}

// checkOld checks that the proof names the device on record: the recorded
// key's suite is the recorded algorithm and the proof's, and the proof's
// old identity is SHA-256 of the recorded SPKI.
func checkOld(p *Proof, suite sigalg.Suite, old Predecessor) (crypto.PublicKey, error) {
	pub, recorded, err := sigalg.ParsePublicKeyWithSuite(old.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: recorded old key: %w", ErrMalformed, err)
	}
	if recorded.ID() != old.Algorithm || recorded.ID() != suite.ID() {
		return nil, fmt.Errorf("%w: old algorithm %s, recorded %s with a %s key", ErrIdentityMismatch, p.OldAlgorithm, old.Algorithm, recorded.ID())
	}
	if !identity.FromSPKI(old.PublicKey).Equal(p.OldIdentity) {
		return nil, fmt.Errorf("%w: old identity is not the recorded device", ErrIdentityMismatch)
	}
	return pub, nil
}

// checkNew parses the new key, which must pass sigalg's key policy, be of
// the proof's new algorithm and be in canonical DER, and checks that the
// new identity is its SHA-256, so that one key has one identity.
func checkNew(p *Proof, suite sigalg.Suite) (Successor, error) {
	pub, parsed, err := sigalg.ParsePublicKeyWithSuite(p.NewPublicKey)
	if err != nil {
		return Successor{}, fmt.Errorf("%w: %w", ErrNewKeyRefused, err)
	}
	if parsed.ID() != suite.ID() {
		return Successor{}, fmt.Errorf("%w: new algorithm %s, new key is %s", ErrIdentityMismatch, p.NewAlgorithm, parsed.ID())
	}
	canonical, err := sigalg.MarshalPublicKey(pub)
	if err != nil || !bytes.Equal(canonical, p.NewPublicKey) {
		return Successor{}, fmt.Errorf("%w: new key not in canonical DER", ErrNewKeyRefused)
	}
	if !identity.FromSPKI(p.NewPublicKey).Equal(p.NewIdentity) {
		return Successor{}, fmt.Errorf("%w: new identity is not SHA-256 of the new key", ErrIdentityMismatch)
	}
	spki := bytes.Clone(p.NewPublicKey)
	return Successor{Identity: p.NewIdentity, Algorithm: suite.ID(), PublicKey: pub, SPKI: spki}, nil
}

// check checks a proof's form: known algorithms in their canonical
// spelling, and every field within its limits and its suite's sizes.
func (p *Proof) check() (oldSuite, newSuite sigalg.Suite, err error) {
	if oldSuite, err = canonicalSuite(p.OldAlgorithm); err != nil {
		return nil, nil, fmt.Errorf("old algorithm: %w", err)
	}
	if newSuite, err = canonicalSuite(p.NewAlgorithm); err != nil {
		return nil, nil, fmt.Errorf("new algorithm: %w", err)
	}
	switch {
	case len(p.NewPublicKey) == 0 || len(p.NewPublicKey) > MaxPublicKey:
		return nil, nil, fmt.Errorf("%w: new public key of %d bytes, want 1 to %d", ErrMalformed, len(p.NewPublicKey), MaxPublicKey)
	case len(p.OldSignature) == 0 || len(p.OldSignature) > oldSuite.SignatureSize():
		return nil, nil, fmt.Errorf("%w: old signature of %d bytes, %s's are at most %d", ErrMalformed, len(p.OldSignature), oldSuite.ID(), oldSuite.SignatureSize())
	case len(p.NewSignature) == 0 || len(p.NewSignature) > newSuite.SignatureSize():
		return nil, nil, fmt.Errorf("%w: new signature of %d bytes, %s's are at most %d", ErrMalformed, len(p.NewSignature), newSuite.ID(), newSuite.SignatureSize())
	}
	return oldSuite, newSuite, nil
}

// canonicalSuite returns the suite id names, which must be spelled as the
// suite's ID: the name is signed, so an alias would be another message.
func canonicalSuite(id sigalg.ID) (sigalg.Suite, error) {
	s, err := sigalg.Lookup(string(id))
	if err != nil || s.ID() != id {
		return nil, fmt.Errorf("%w: algorithm %.32q", ErrMalformed, string(id))
	}
	return s, nil
}
