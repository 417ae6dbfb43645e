package ota

import (
	"context"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// MigrationTransport carries the migration exchange (internal/migration's
// routes), under mutual TLS with the device's current, old, certificate.
type MigrationTransport interface {
	MigrationChallenge(ctx context.Context) (migration.ChallengeResponse, error)
	Migrate(ctx context.Context, req migration.Request) (*onboarding.Credentials, error)
}

// Reason codes of a migration's failure.
const (
	// ReasonMigrationUnsupported: this agent has no migration transport,
	// or the chip cannot take a key over the air this way (an inject
	// chip, whose key the platform would have to seal to it).
	ReasonMigrationUnsupported = "migration-unsupported"
	// ReasonMigrationRefused: the platform refused the continuity proof
	// or the request.
	ReasonMigrationRefused = "migration-refused"
	// ReasonMigrationMismatch: the platform's challenge or credentials
	// are not for the key the device made.
	ReasonMigrationMismatch = "migration-mismatch"
)

// migrate re-keys the device to the order's suite once its update booted:
// a pending key (made, or still pending from an interrupted attempt), a
// fresh challenge, the continuity proof and a bound certificate request,
// then the new credentials stored and the key committed in one save.
func (a *Agent) migrate(ctx context.Context, j *journal) error {
	if a.Migrator == nil || a.CSRs == nil {
		return a.fail(j, ReasonMigrationUnsupported, "this agent cannot carry a key migration")
	}
	held := a.Device.Credentials()
	if held == nil {
		return a.fail(j, "not-onboarded", "the device has no credentials to migrate")
	}
	pending, err := a.pendingKey(j)
	if err != nil || pending == nil {
		return err
	}
	resp, err := a.Migrator.MigrationChallenge(ctx)
	if errors.Is(err, ErrRefused) {
		return a.abortMigration(j, ReasonMigrationRefused, err.Error())
	}
	if err != nil {
		return fmt.Errorf("migration challenge: %w", err)
	}
	if resp.TargetAlgorithm != pending.Algorithm {
		return a.abortMigration(j, ReasonMigrationMismatch,
			fmt.Sprintf("the platform asks for %s, the order for %s", resp.TargetAlgorithm, pending.Algorithm))
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
	if errors.Is(err, ErrRefused) {
		return a.abortMigration(j, ReasonMigrationRefused, err.Error())
	}
	if err != nil {
		// The pending key stays: the next Step proves again with it.
		return fmt.Errorf("migration: %w", err)
	}
	if creds.Identity != pending.Identity {
		return a.abortMigration(j, ReasonMigrationMismatch, fmt.Sprintf("credentials for %s, not the new key's %s", creds.Identity, pending.Identity))
	}
	return a.commitMigration(j, held, creds)
}

// pendingKey returns the device's pending key for the order, beginning the
// migration if none is pending; nil, nil when the migration concluded.
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
		if errors.Is(err, device.ErrWrongInjection) && a.Device.Class() == device.ClassInject {
			return nil, a.fail(j, ReasonMigrationUnsupported, "an inject chip cannot make its new key; it needs one sealed to its transport key, "+
				"which this platform does not send over the air yet")
		}
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
// failed: the device keeps its old identity, which still works.
func (a *Agent) abortMigration(j *journal, reason, detail string) error {
	if err := a.Device.AbortMigration(); err != nil && !errors.Is(err, device.ErrNoMigration) {
		return fmt.Errorf("migration: %w", err)
	}
	if err := a.saveDevice(); err != nil {
		return err
	}
	return a.fail(j, reason, detail)
}
