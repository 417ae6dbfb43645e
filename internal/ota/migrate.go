package ota

import (
	"context"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sealing"
)

// MigrationTransport carries the migration exchange (internal/migration's
// routes), under mutual TLS with the device's current, old, certificate.
type MigrationTransport interface {
	// PlatformName is the platform's name as the device reached it: an
	// inject chip binds its transport key to it.
	PlatformName() string
	MigrationChallenge(ctx context.Context, req migration.ChallengeRequest) (migration.ChallengeResponse, error)
	Migrate(ctx context.Context, req migration.Request) (*onboarding.Credentials, error)
}

// Reason codes of a migration's failure.
const (
	// ReasonMigrationUnsupported: this agent has no migration transport,
	// or the chip cannot take a key over the air (an inject chip without
	// an encrypted programming channel).
	ReasonMigrationUnsupported = "migration-unsupported"
	// ReasonMigrationRefused: the platform refused the continuity proof
	// or the request.
	ReasonMigrationRefused = "migration-refused"
	// ReasonMigrationMismatch: the platform's challenge or credentials
	// are not for the key the device made, or the key it sealed is not
	// the one its challenge names.
	ReasonMigrationMismatch = "migration-mismatch"
	// ReasonMigrationSuperseded: the platform says the old identity
	// migrated, but not to the device's pending key (or it holds none):
	// someone else proved continuity for it — the alarm of
	// docs/migration.md, "What an attacker can do".
	ReasonMigrationSuperseded = "migration-superseded"
)

// migrate re-keys the device to the order's suite once its update booted:
// a pending key (made, received sealed, or still pending from an
// interrupted attempt), a fresh challenge, the continuity proof and a
// bound certificate request, then the new credentials stored and the key
// committed in one save. The pending key is saved before the proof leaves
// the device, so that a platform which commits a migration whose answer
// is lost still finds the device holding the new key (recoverMigration).
func (a *Agent) migrate(ctx context.Context, j *journal) error {
	if a.Migrator == nil || a.CSRs == nil {
		return a.fail(j, ReasonMigrationUnsupported, "this agent cannot carry a key migration")
	}
	held := a.Device.Credentials()
	if held == nil {
		return a.fail(j, "not-onboarded", "the device has no credentials to migrate")
	}
	inject := a.Device.Class() == device.ClassInject
	var pending *device.Migration
	if inject {
		if !a.Device.HasChannel() {
			return a.fail(j, ReasonMigrationUnsupported, "an inject chip without an encrypted programming channel cannot take a key over the air; it goes back to a station")
		}
		// Its key comes sealed in the challenge; a key pending from an
		// earlier challenge is kept until the platform shows, by issuing
		// a new challenge to the old identity, that it did not commit it.
		if p, err := a.Device.PendingMigration(); err == nil {
			pending = p
		}
	} else {
		var err error
		if pending, err = a.pendingKey(j); err != nil || pending == nil {
			return err
		}
	}
	req, err := a.challengeRequest(inject)
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	resp, err := a.Migrator.MigrationChallenge(ctx, req)
	switch {
	case errors.Is(err, onboarding.ErrMigrated):
		return a.recoverMigration(ctx, j, held)
	case errors.Is(err, ErrRefused):
		return a.abortMigration(j, ReasonMigrationRefused, err.Error())
	case err != nil:
		return fmt.Errorf("migration challenge: %w", err)
	}
	if inject {
		if pending, err = a.openSealedKey(j, pending, resp); err != nil || pending == nil {
			return err
		}
	}
	if resp.TargetAlgorithm != pending.Algorithm || pending.Algorithm != j.Migration.TargetAlgorithm {
		return a.abortMigration(j, ReasonMigrationMismatch,
			fmt.Sprintf("the platform asks for %s, the order for %s, the new key is %s", resp.TargetAlgorithm, j.Migration.TargetAlgorithm, pending.Algorithm))
	}
	ch, err := resp.Continuity()
	if err != nil {
		return a.abortMigration(j, ReasonMigrationMismatch, err.Error())
	}
	proof, err := a.Device.ProveContinuity(ch)
	if err != nil {
		return a.abortMigration(j, device.ReasonCode(err), err.Error())
	}
	// The operational (TLS) key stays: TLS cannot sign with ML-DSA, and a
	// puf chip derives it from its PUF regardless of the enrolment key.
	opKey, err := a.Device.OperationalKey(held.OperationalAlg)
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	csr, err := a.CSRs.MakeCSR(opKey, pending.Identity.String(), migration.CSRBinding(ch, pending.Identity))
	if err != nil {
		return fmt.Errorf("migration: certificate request: %w", err)
	}
	creds, err := a.Migrator.Migrate(ctx, migration.Request{ChallengeID: resp.ChallengeID, Proof: proof, CSR: csr})
	switch {
	case errors.Is(err, onboarding.ErrMigrated):
		// Committed by an earlier attempt whose answer was lost.
		return a.recoverMigration(ctx, j, held)
	case errors.Is(err, ErrRefused):
		return a.abortMigration(j, ReasonMigrationRefused, err.Error())
	case err != nil:
		// The pending key stays: the next Step proves again with it, or
		// recovers if the platform committed.
		return fmt.Errorf("migration: %w", err)
	}
	if creds.Identity != pending.Identity {
		return a.abortMigration(j, ReasonMigrationMismatch, fmt.Sprintf("credentials for %s, not the new key's %s", creds.Identity, pending.Identity))
	}
	return a.commitMigration(j, held, creds)
}

// challengeRequest is the challenge request's body: empty, or for an
// inject chip its transport key signed by its current enrolment key
// (migration.TransportKeyMessage), so that no one on the way can have the
// platform seal the new key to another transport key.
func (a *Agent) challengeRequest(inject bool) (migration.ChallengeRequest, error) {
	if !inject {
		return migration.ChallengeRequest{}, nil
	}
	tk, err := a.Device.TransportKey()
	if err != nil {
		return migration.ChallengeRequest{}, err
	}
	raw := sealing.MarshalPublicKey(tk)
	_, sig, err := a.Device.Prove(migration.TransportKeyContext, migration.TransportKeyMessage(a.Migrator.PlatformName(), raw))
	if err != nil {
		return migration.ChallengeRequest{}, err
	}
	return migration.ChallengeRequest{TransportKey: raw, TransportKeySignature: sig}, nil
}

// openSealedKey has an inject chip's bootloader open the key the platform
// sealed into resp, checks it is the key the challenge names, and saves
// it as the pending key before any proof leaves the device. A key pending
// from an earlier challenge is dropped first: the platform just issued a
// challenge to the old identity, so it committed no migration to it.
func (a *Agent) openSealedKey(j *journal, earlier *device.Migration, resp migration.ChallengeResponse) (*device.Migration, error) {
	named, ok := resp.SealedKeyIdentity()
	if !ok {
		return nil, a.abortMigration(j, ReasonMigrationMismatch, "the platform sent no sealed key for this inject chip")
	}
	if earlier != nil {
		if err := a.Device.AbortMigration(); err != nil {
			return nil, fmt.Errorf("migration: %w", err)
		}
	}
	m, err := a.Device.BeginInjectedMigration(resp.SealedKey)
	if err != nil {
		return nil, a.abortMigration(j, device.ReasonCode(err), err.Error())
	}
	if m.Identity != named {
		return nil, a.abortMigration(j, ReasonMigrationMismatch, fmt.Sprintf("the sealed key is %s, the challenge names %s", m.Identity, named))
	}
	if err := a.saveDevice(); err != nil {
		return nil, err
	}
	a.printf("migrating: new %s enrolment key received sealed from the platform, identity %s", m.Algorithm, m.Identity)
	return m, nil
}

// recoverMigration finishes a migration the platform committed but whose
// answer the device never saved (power lost between the platform's commit
// and the device's save): the old identity is refused as migrated, and the
// successor is registered and onboarded under the pending key. The device
// onboards it through the ordinary challenge and proof, signing with the
// pending key, then commits the key with the credentials in one save.
func (a *Agent) recoverMigration(ctx context.Context, j *journal, held *device.Credentials) error {
	pending, err := a.Device.PendingMigration()
	if errors.Is(err, device.ErrNoMigration) {
		return a.fail(j, ReasonMigrationSuperseded, "the platform says this identity migrated, but the device holds no new key")
	}
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	if a.Onboarding == nil {
		// Not a failure to report: the key is the device's only way
		// back, and an agent configured to onboard can still use it.
		return fmt.Errorf("migration: the platform committed the migration to %s, and this agent cannot onboard it (no onboarding client)", pending.Identity)
	}
	opKey, err := a.Device.OperationalKey(held.OperationalAlg)
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	a.printf("recovering: the platform committed the migration; onboarding identity %s with the new key", pending.Identity)
	creds, err := a.Onboarding.OnboardWithKey(ctx, pendingProver{a.Device}, pending.Identity, opKey)
	switch {
	case errors.Is(err, onboarding.ErrProofRejected):
		// The successor is not the pending key: the old identity's
		// lineage went elsewhere. Keep the key; nothing else is left.
		return a.fail(j, ReasonMigrationSuperseded, fmt.Sprintf("the old identity migrated, but not to this device's new key %s", pending.Identity))
	case err != nil:
		return fmt.Errorf("migration: recover: %w", err)
	}
	if creds.Identity != pending.Identity {
		return a.fail(j, ReasonMigrationMismatch, fmt.Sprintf("credentials for %s, not the new key's %s", creds.Identity, pending.Identity))
	}
	return a.commitMigration(j, held, creds)
}

// pendingProver signs onboarding's proof with the pending key.
type pendingProver struct{ d *device.Device }

func (p pendingProver) Prove(context string, nonce []byte) (identity.ID, []byte, error) {
	return p.d.ProvePending(context, nonce)
}

// pendingKey returns the puf or keygen chip's pending key for the order,
// beginning the migration if none is pending; nil, nil when the migration
// concluded.
func (a *Agent) pendingKey(j *journal) (*device.Migration, error) {
	target := j.Migration.TargetAlgorithm
	pending, err := a.Device.PendingMigration()
	if err == nil && pending.Algorithm != target {
		if err := a.Device.AbortMigration(); err != nil {
			return nil, fmt.Errorf("migration: %w", err)
		}
		err = device.ErrNoMigration
	}
	if errors.Is(err, device.ErrNoMigration) {
		pending, err = a.Device.BeginMigration(target)
		if err != nil {
			return nil, a.fail(j, device.ReasonCode(err), err.Error())
		}
		if err := a.saveDevice(); err != nil {
			return nil, err
		}
		a.printf("migrating: new %s enrolment key, identity %s", pending.Algorithm, pending.Identity)
	}
	if err != nil {
		return nil, fmt.Errorf("migration: %w", err)
	}
	return pending, nil
}

func (a *Agent) commitMigration(j *journal, held *device.Credentials, creds *onboarding.Credentials) error {
	a.Device.SetCredentials(device.Credentials{CertificateChain: creds.CertificateChain, TrustBundle: creds.TrustBundle,
		CloudEndpoint: creds.CloudEndpoint, OperationalAlg: held.OperationalAlg})
	if _, err := a.Device.CommitMigration(); err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	if err := a.saveDevice(); err != nil {
		return err
	}
	a.printf("migrated: identity %s (%s); certificate valid until %s", creds.Identity, a.Device.Algorithm(), creds.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
	if a.Reconnect != nil {
		t, err := a.Reconnect(a.Device)
		if err != nil {
			return fmt.Errorf("migration: reconnect with the new certificate: %w", err)
		}
		a.Transport = t
	}
	return a.conclude(j, StateMigrated, "", "")
}

// abortMigration drops the pending key and concludes the migration as
// failed: the device keeps its old identity, which still works. It is
// called only on the platform's refusal of a live old identity, never on
// device-migrated, where the pending key is the device's only identity.
func (a *Agent) abortMigration(j *journal, reason, detail string) error {
	if err := a.Device.AbortMigration(); err != nil && !errors.Is(err, device.ErrNoMigration) {
		return fmt.Errorf("migration: %w", err)
	}
	if err := a.saveDevice(); err != nil {
		return err
	}
	return a.fail(j, reason, detail)
}
