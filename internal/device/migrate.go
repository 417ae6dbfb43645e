package device

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"math"

	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// MigrationKeyInfo is the HPKE info under which a platform seals a
// migration key to an inject chip's transport key. It differs from the
// factory's sealing.WrapInfo, so a key sealed for the factory cannot be
// replayed as a migration key, nor the reverse.
const MigrationKeyInfo = "hallmark migration key wrap v1"

// Errors of re-keying.
var (
	ErrMigrationPending = errors.New("a key migration is already pending")
	ErrNoMigration      = errors.New("no key migration is pending")
	// ErrNotOnboarded reports an over-the-air key migration of a chip that
	// has no credentials yet: such a chip takes its key in the factory.
	ErrNotOnboarded = errors.New("device is not onboarded")
)

// pendingMigration is the public half of a pending re-keying: the target
// suite and, for a puf chip, the derivation generation of the new key.
type pendingMigration struct {
	Algorithm     sigalg.ID `json:"algorithm"`
	PUFGeneration uint32    `json:"puf_generation,omitempty"`
}

// Migration describes the pending enrolment key: public data only.
type Migration struct {
	Algorithm sigalg.ID
	Identity  identity.ID
	PublicKey []byte // DER SubjectPublicKeyInfo
}

// SealMigrationKey seals a PKCS #8 enrolment key to an inject chip's
// transport key for BeginInjectedMigration.
func SealMigrationKey(transport *sealing.PublicKey, pkcs8 []byte) ([]byte, error) {
	return sealing.Seal(transport, []byte(MigrationKeyInfo), nil, pkcs8)
}

// BeginMigration starts re-keying a puf or keygen chip to the suite
// target: a puf chip derives the new key from its PUF seed under the next
// derivation generation (nothing stored); a keygen chip generates it from
// its TRNG inside the protected key store. The current key stays the
// enrolment key until CommitMigration. Firmware must be running.
func (d *Device) BeginMigration(target sigalg.ID) (*Migration, error) {
	if err := d.canMigrate(); err != nil {
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	suite, err := target.Suite()
	if err != nil {
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	switch d.st.Class {
	case ClassPUF:
		if d.st.OTP.PUFGeneration == math.MaxUint32 {
			// The next would wrap to generation 0, the chip's first key.
			return nil, fmt.Errorf("begin migration: the PUF derivation generations are used up")
		}
		d.st.Flash.Migration = &pendingMigration{Algorithm: suite.ID(), PUFGeneration: d.st.OTP.PUFGeneration + 1}
	case ClassKeygen:
		key, err := suite.GenerateKey(d.rand)
		if err != nil {
			return nil, fmt.Errorf("begin migration: %w", err)
		}
		der, err := sigalg.MarshalPrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("begin migration: %w", err)
		}
		d.st.KeyStore.PendingKey = der
		d.st.Flash.Migration = &pendingMigration{Algorithm: suite.ID()}
	default:
		return nil, fmt.Errorf("begin migration: %w: an inject chip cannot make keys; it takes one sealed to its transport key (BeginInjectedMigration)", ErrWrongInjection)
	}
	return d.finishBegin()
}

// BeginInjectedMigration starts re-keying an onboarded inject chip with a
// key sealed to its transport key (SealMigrationKey). Only the encrypted
// channel is accepted: a chip without one cannot be re-keyed over the air,
// since its new key would cross the network in the clear.
func (d *Device) BeginInjectedMigration(sealed []byte) (*Migration, error) {
	if d.st.Class != ClassInject {
		return nil, fmt.Errorf("begin migration: %w: a %s chip makes its own key", ErrWrongInjection, d.st.Class)
	}
	if err := d.canMigrate(); err != nil {
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	if d.st.Loader == nil {
		return nil, fmt.Errorf("begin migration: %w: this chip cannot be re-keyed over the air", ErrNoChannel)
	}
	if d.st.Flash.Credentials == nil {
		return nil, fmt.Errorf("begin migration: %w: inject its key in the factory instead", ErrNotOnboarded)
	}
	// Re-keying over the air is HPKE only: the platform seals in software,
	// so the HSM argument for the ECDH channel does not apply, and the
	// migration's own info string separates it from factory injection.
	transport, err := d.hpkeTransport()
	if err != nil {
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	plain, err := sealing.Open(transport, []byte(MigrationKeyInfo), nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("begin migration: %w: cannot open the sealed key: %v", ErrWrongInjection, err)
	}
	defer clear(plain)
	_, suite, err := sigalg.ParsePrivateKeyWithSuite(plain)
	if err != nil {
		return nil, fmt.Errorf("begin migration: %w: %v", ErrWrongInjection, err)
	}
	d.st.KeyStore.PendingKey = bytes.Clone(plain)
	d.st.Flash.Migration = &pendingMigration{Algorithm: suite.ID()}
	return d.finishBegin()
}

func (d *Device) canMigrate() error {
	if d.running == nil {
		return ErrNotRunning
	}
	if d.st.Flash.Migration != nil {
		return ErrMigrationPending
	}
	if d.st.Class != ClassPUF && d.st.KeyStore.EnrolmentKey == nil {
		return ErrNoKey
	}
	return nil
}

// finishBegin refuses a pending key that is the current one, which no
// honest source produces and which would make the continuity proof
// meaningless; otherwise it describes the pending key.
func (d *Device) finishBegin() (*Migration, error) {
	m, err := d.describePending()
	if err == nil {
		var current identity.ID
		if _, _, current, err = d.identityKey(); err == nil && current == m.Identity {
			err = fmt.Errorf("%w: the new key is the current one", ErrWrongInjection)
		}
	}
	if err != nil {
		d.dropPending()
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	return m, nil
}

// PendingMigration describes the pending key, or returns ErrNoMigration.
func (d *Device) PendingMigration() (*Migration, error) {
	if d.st.Flash.Migration == nil {
		return nil, ErrNoMigration
	}
	return d.describePending()
}

func (d *Device) describePending() (*Migration, error) {
	key, err := d.pendingKey()
	if err != nil {
		return nil, err
	}
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	return &Migration{Algorithm: d.st.Flash.Migration.Algorithm, Identity: identity.FromSPKI(spki), PublicKey: spki}, nil
}

func (d *Device) pendingKey() (crypto.Signer, error) {
	m := d.st.Flash.Migration
	if m == nil {
		return nil, ErrNoMigration
	}
	if d.st.Class == ClassPUF {
		suite, err := m.Algorithm.Suite()
		if err != nil {
			return nil, err
		}
		return d.derivePUFKey(m.PUFGeneration, suite)
	}
	return sigalg.ParsePrivateKey(d.st.KeyStore.PendingKey)
}

// ProveContinuity answers a platform's challenge with the current and the
// pending key, each signing the other's identity (package continuity).
func (d *Device) ProveContinuity(ch continuity.Challenge) (*continuity.Proof, error) {
	if d.running == nil {
		return nil, fmt.Errorf("continuity proof: %w", ErrNotRunning)
	}
	oldKey, err := d.enrolmentKey()
	if err != nil {
		return nil, fmt.Errorf("continuity proof: %w", err)
	}
	newKey, err := d.pendingKey()
	if err != nil {
		return nil, fmt.Errorf("continuity proof: %w", err)
	}
	proof, err := continuity.Sign(ch, oldKey, newKey)
	if err != nil {
		return nil, fmt.Errorf("continuity proof: %w", err)
	}
	return proof, nil
}

// ProvePending signs as Prove does, with the pending key instead of the
// enrolment key. The update agent needs it when the platform committed a
// migration whose answer never reached the device: the old identity is
// refused from then on, and the device onboards its successor with the
// pending key before committing it (docs/ota.md, "The update agent").
func (d *Device) ProvePending(context string, nonce []byte) (identity.ID, []byte, error) {
	if d.running == nil {
		return identity.ID{}, nil, fmt.Errorf("prove: %w", ErrNotRunning)
	}
	m, err := d.PendingMigration()
	if err != nil {
		return identity.ID{}, nil, fmt.Errorf("prove: %w", err)
	}
	key, err := d.pendingKey()
	if err != nil {
		return identity.ID{}, nil, fmt.Errorf("prove: %w", err)
	}
	suite, err := m.Algorithm.Suite()
	if err != nil {
		return identity.ID{}, nil, fmt.Errorf("prove: %w", err)
	}
	sig, err := suite.Sign(key, identity.ProofMessage(context, nonce, m.Identity))
	if err != nil {
		return identity.ID{}, nil, fmt.Errorf("prove: %w", err)
	}
	return m.Identity, sig, nil
}

// CommitMigration makes the pending key the enrolment key. A keygen or
// inject chip erases the old key from its key store. A puf chip burns the
// new generation into OTP; its ROM derives only that generation from then
// on, so the old key, which the same seed still defines, is out of reach
// of any firmware. It returns the new key's description.
func (d *Device) CommitMigration() (*Migration, error) {
	if d.running == nil {
		return nil, fmt.Errorf("commit migration: %w", ErrNotRunning)
	}
	m, err := d.PendingMigration()
	if err != nil {
		return nil, fmt.Errorf("commit migration: %w", err)
	}
	pm := d.st.Flash.Migration
	if d.st.Class == ClassPUF {
		d.st.OTP.PUFGeneration = pm.PUFGeneration
	} else {
		clear(d.st.KeyStore.EnrolmentKey)
		d.st.KeyStore.EnrolmentKey, d.st.KeyStore.PendingKey = d.st.KeyStore.PendingKey, nil
	}
	d.st.Algorithm, d.st.Flash.Migration = pm.Algorithm, nil
	return m, nil
}

// AbortMigration forgets the pending key: a keygen or inject chip erases
// it; a puf chip, which stored nothing, forgets the generation.
func (d *Device) AbortMigration() error {
	if d.st.Flash.Migration == nil {
		return fmt.Errorf("abort migration: %w", ErrNoMigration)
	}
	d.dropPending()
	return nil
}

func (d *Device) dropPending() {
	if d.st.KeyStore != nil {
		clear(d.st.KeyStore.PendingKey)
		d.st.KeyStore.PendingKey = nil
	}
	d.st.Flash.Migration = nil
}

// checkMigration checks a loaded pending migration against the class.
func (st *state) checkMigration() error {
	m := st.Flash.Migration
	pending := st.KeyStore != nil && st.KeyStore.PendingKey != nil
	if m == nil {
		if pending {
			return fmt.Errorf("a pending key without a pending migration")
		}
		return nil
	}
	if _, err := m.Algorithm.Suite(); err != nil {
		return fmt.Errorf("pending migration: %w", err)
	}
	if st.Class == ClassPUF {
		if m.PUFGeneration != st.OTP.PUFGeneration+1 {
			return fmt.Errorf("pending PUF generation %d after generation %d", m.PUFGeneration, st.OTP.PUFGeneration)
		}
		return nil
	}
	if !pending || m.PUFGeneration != 0 {
		return fmt.Errorf("pending migration without its key")
	}
	_, suite, err := sigalg.ParsePrivateKeyWithSuite(st.KeyStore.PendingKey)
	if err != nil || suite.ID() != m.Algorithm {
		return fmt.Errorf("pending key does not match the pending migration to %s", m.Algorithm)
	}
	return nil
}
