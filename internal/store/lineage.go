package store

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Lineage (docs/migration.md, "Lineage"): a device that proved continuity
// from its old enrolment key to a new one is registered again under its
// new identity, the successor of the old one. The old identity is kept,
// moved to StateMigrated (terminal: never onboarded, renewed, transitioned
// or reprovisioned again), and the link between the two is recorded once
// for each: one successor per identity, one predecessor per identity.

// StateMigrated: the device moved to a new enrolment identity (its
// successor); the old identity is refused for good and its certificates
// are revoked (superseded).
const StateMigrated DeviceState = "migrated"

// EventMigrated: the device's identity was superseded by a migration;
// Detail names the successor. Written by the state change, in the
// migration's transaction.
const EventMigrated EventKind = "device.migrated"

// ErrLineage reports a migration the lineage refuses: the new identity is
// registered already (as any device, a successor included) or the old
// one has a successor. Nothing changes.
var ErrLineage = errors.New("lineage refused")

// MigrationChallenge is one migration's challenge: issued over mutual TLS
// to an onboarded device, single use, short lived, for one target suite.
type MigrationChallenge struct {
	ID         [16]byte
	Identity   identity.ID // the device authenticated when it was issued
	Nonce      []byte
	ServerName string
	Target     sigalg.ID
	IssuedAt   time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time // zero until consumed
}

// LineageLink is one step of a device's lineage.
type LineageLink struct {
	Predecessor identity.ID
	Successor   identity.ID
	At          time.Time
	ChallengeID [16]byte
	// FromAlgorithm and ToAlgorithm are the two enrolment suites.
	FromAlgorithm sigalg.ID
	ToAlgorithm   sigalg.ID
}

// DeviceLineage is a device's two neighbours in its lineage: nil where it
// has none.
type DeviceLineage struct {
	Predecessor *LineageLink // the link that made this identity
	Successor   *LineageLink // the link that superseded it
}

// Migration is one migration's write (CompleteMigration).
type Migration struct {
	Old identity.ID
	// New is the successor's enrolment identity, suite and key (DER
	// SubjectPublicKeyInfo); the rest of its record is the old device's.
	New          identity.ID
	NewAlgorithm sigalg.ID
	NewPublicKey []byte
	// Certificate is the successor's first certificate.
	Certificate Certificate
	ChallengeID [16]byte
	At          time.Time
	// Audit is appended in the transaction (a zero Time is At).
	Audit AuditEvent
	// Jobs are enqueued in the transaction: connector.Outbox's
	// deregistration of the old identity and registration of the new.
	Jobs []Job
}

// MigrationResult is what a migration did.
type MigrationResult struct {
	// Predecessor is the old device after the migration; Successor the new.
	Predecessor Device
	Successor   Device
	// Revoked counts the old identity's certificates revoked (superseded).
	Revoked int
}

// Lineage keeps migration challenges and the lineage of migrated devices.
type Lineage interface {
	// CreateMigrationChallenge stores a challenge; a taken ID is
	// ErrExists. It may delete challenges that expired long ago.
	CreateMigrationChallenge(ctx context.Context, c MigrationChallenge) error
	// ConsumeMigrationChallenge marks the challenge used at now and
	// returns it: of concurrent calls exactly one succeeds, the others
	// get ErrChallengeUsed; an expired one (now at or after ExpiresAt) is
	// ErrChallengeExpired and stays unused; an unknown one ErrNotFound.
	ConsumeMigrationChallenge(ctx context.Context, id [16]byte, now time.Time) (MigrationChallenge, error)
	// CompleteMigration applies m in one transaction, under the old
	// device's row lock: the old device must be onboarded (otherwise a
	// *StateError naming its state; unknown, ErrNotFound); the new
	// identity must not be registered (ErrLineage). It registers the
	// successor (the old device's product, batch, station, root of trust
	// and injection; m's suite and key) with m.Certificate, onboarded at
	// m.At; passes the old identity's operational keys to the successor,
	// so a kept TLS key stays certified for one live device (a key
	// certified for any other device is ErrKeyInUse); moves the old
	// device to StateMigrated (StateReason names the successor) and
	// revokes its certificates not yet revoked, or on hold, with
	// ReasonSuperseded at m.At; records the link; enqueues m.Jobs and
	// appends m.Audit. Refused, nothing changes.
	CompleteMigration(ctx context.Context, m Migration) (MigrationResult, error)
	// GetLineage returns a device's neighbours in its lineage; an
	// identity without any (or unknown) has none.
	GetLineage(ctx context.Context, id identity.ID) (DeviceLineage, error)
}

// MigrationReason is the StateReason of a migrated device.
func MigrationReason(successor identity.ID) string { return "migrated to " + successor.String() }
