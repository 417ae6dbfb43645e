package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Lineage: migration challenges and migrations (migration 0014).

const migrationChallengeColumns = `id, identity, nonce, server_name, target, issued_at, expires_at, used_at`

// migrationChallengeKeep is how long past its expiry a challenge is kept,
// so a late answer is told "expired" rather than "unknown".
const migrationChallengeKeep = time.Hour

// CreateMigrationChallenge stores c, deleting challenges that expired
// long ago (migrations are rare; no janitor is needed).
func (s *Store) CreateMigrationChallenge(ctx context.Context, c store.MigrationChallenge) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM migration_challenges WHERE expires_at < $1`,
			c.IssuedAt.Add(-migrationChallengeKeep)); err != nil {
			return fmt.Errorf("delete expired: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO migration_challenges (`+migrationChallengeColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)`,
			c.ID[:], c.Identity[:], c.Nonce, c.ServerName, string(c.Target), c.IssuedAt, c.ExpiresAt)
		if isKeyTaken(err) {
			return store.ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create migration challenge: %w", err)
	}
	return nil
}

// ConsumeMigrationChallenge marks the challenge used; the conditional
// update is the check, so of concurrent calls in any replica one succeeds.
func (s *Store) ConsumeMigrationChallenge(ctx context.Context, id [16]byte, now time.Time) (store.MigrationChallenge, error) {
	var c store.MigrationChallenge
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		c, err = scanMigrationChallenge(tx.QueryRow(ctx, `UPDATE migration_challenges SET used_at = $1
			WHERE id = $2 AND used_at IS NULL AND expires_at > $1 RETURNING `+migrationChallengeColumns, now, id[:]))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		c, err = scanMigrationChallenge(tx.QueryRow(ctx, `SELECT `+migrationChallengeColumns+` FROM migration_challenges WHERE id = $1`, id[:]))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case !c.UsedAt.IsZero():
			return store.ErrChallengeUsed
		}
		return store.ErrChallengeExpired
	})
	if err != nil {
		return store.MigrationChallenge{}, fmt.Errorf("postgres: consume migration challenge %x: %w", id, err)
	}
	return c, nil
}

func scanMigrationChallenge(row pgx.Row) (store.MigrationChallenge, error) {
	var c store.MigrationChallenge
	var id, ident []byte
	var target string
	var used *time.Time
	if err := row.Scan(&id, &ident, &c.Nonce, &c.ServerName, &target, &c.IssuedAt, &c.ExpiresAt, &used); err != nil {
		return c, err
	}
	c.Target, c.IssuedAt, c.ExpiresAt, c.UsedAt = sigalg.ID(target), c.IssuedAt.UTC(), c.ExpiresAt.UTC(), fromNullTime(used)
	return c, errors.Join(fixed(c.ID[:], id, "challenge ID"), fixed(c.Identity[:], ident, "identity"))
}

// CompleteMigration applies m in one transaction. The old device's row
// is locked first (FOR UPDATE), as a transition or an onboarding locks
// it; the successor's is new, and a concurrent migration to the same new
// identity loses on the devices table's unique identity.
func (s *Store) CompleteMigration(ctx context.Context, m store.Migration) (store.MigrationResult, error) {
	var res store.MigrationResult
	if m.Audit.Time.IsZero() {
		m.Audit.Time = m.At
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = completeMigration(ctx, tx, m)
		return err
	})
	if err != nil {
		return store.MigrationResult{}, fmt.Errorf("postgres: migrate %s to %s: %w", m.Old, m.New, err)
	}
	return res, nil
}

// passOperationalKeys gives the old identity's operational keys to the new
// one, through operational_keys_by_identity (migration 0016).
const passOperationalKeys = `UPDATE operational_keys SET identity = $1 WHERE identity = $2`

func completeMigration(ctx context.Context, tx pgx.Tx, m store.Migration) (store.MigrationResult, error) {
	var res store.MigrationResult
	old, err := scanDevice(tx.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE identity = $1 FOR UPDATE`, m.Old[:]))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return res, store.ErrNotFound
	case err != nil:
		return res, fmt.Errorf("read device: %w", err)
	case old.State != store.StateOnboarded:
		return res, &store.StateError{State: old.State}
	}
	if m.Old == m.New {
		return res, fmt.Errorf("%w: the new identity is the old one", store.ErrLineage)
	}
	at := m.At
	_, err = tx.Exec(ctx, `INSERT INTO devices (`+deviceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'registered', $9, NULL, NULL, '', NULL, '', $10, $11)`,
		m.New[:], string(m.NewAlgorithm), m.NewPublicKey, old.RootOfTrust, old.Injection, old.BatchID, old.StationID[:],
		old.ProductID, at, old.Locks, successorEndpoint(old))
	if isKeyTaken(err) {
		return res, fmt.Errorf("%w: the new identity is registered already", store.ErrLineage)
	}
	if err != nil {
		return res, fmt.Errorf("register successor: %w", err)
	}
	if _, err := tx.Exec(ctx, passOperationalKeys, m.New[:], m.Old[:]); err != nil {
		return res, fmt.Errorf("pass operational keys: %w", err)
	}
	cert := m.Certificate
	cert.Identity = m.New
	if err := recordOnboarding(ctx, tx, cert, at, store.IssuanceLimit{}, nil); err != nil {
		return res, err
	}
	tag, err := tx.Exec(ctx, `UPDATE certificates SET revoked_at = $1, revocation_reason = $2
		WHERE identity = $3 AND (revoked_at IS NULL OR revocation_reason = $4)`, at, store.ReasonSuperseded, m.Old[:], store.ReasonCertificateHold)
	if err != nil {
		return res, fmt.Errorf("revoke certificates: %w", err)
	}
	res.Revoked = int(tag.RowsAffected())
	if _, err := tx.Exec(ctx, `UPDATE devices SET state = 'migrated', state_changed_at = $1, state_reason = $2 WHERE identity = $3`,
		at, store.MigrationReason(m.New), m.Old[:]); err != nil {
		return res, fmt.Errorf("retire old identity: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO device_lineage (predecessor, successor, migrated_at, challenge_id, from_algorithm, to_algorithm)
		VALUES ($1, $2, $3, $4, $5, $6)`, m.Old[:], m.New[:], at, m.ChallengeID[:], string(old.Algorithm), string(m.NewAlgorithm))
	if isKeyTaken(err) {
		return res, fmt.Errorf("%w: the old identity has a successor already", store.ErrLineage)
	}
	if err != nil {
		return res, fmt.Errorf("record lineage: %w", err)
	}
	for _, j := range m.Jobs {
		if err := enqueueJobs(ctx, tx, j.Identity[:], at, []store.Job{j}); err != nil {
			return res, err
		}
	}
	if _, err := appendAudit(ctx, tx, m.Audit); err != nil {
		return res, fmt.Errorf("append audit: %w", err)
	}
	const q = `SELECT ` + deviceColumns + ` FROM devices WHERE identity = $1`
	if res.Predecessor, err = scanDevice(tx.QueryRow(ctx, q, m.Old[:])); err != nil {
		return res, fmt.Errorf("read device: %w", err)
	}
	if res.Successor, err = scanDevice(tx.QueryRow(ctx, q, m.New[:])); err != nil {
		return res, fmt.Errorf("read successor: %w", err)
	}
	return res, nil
}

// GetLineage reads a device's two links, if any.
func (s *Store) GetLineage(ctx context.Context, id identity.ID) (store.DeviceLineage, error) {
	const q = `SELECT predecessor, successor, migrated_at, challenge_id, from_algorithm, to_algorithm FROM device_lineage
		WHERE predecessor = $1 OR successor = $1`
	links, err := queryAll(ctx, s.pool, q, []any{id[:]}, scanLineageLink)
	if err != nil {
		return store.DeviceLineage{}, fmt.Errorf("postgres: lineage of %s: %w", id, err)
	}
	var l store.DeviceLineage
	for i := range links {
		link := links[i]
		if link.Successor == id {
			l.Predecessor = &link
		} else {
			l.Successor = &link
		}
	}
	return l, nil
}

func scanLineageLink(row pgx.Row) (store.LineageLink, error) {
	var l store.LineageLink
	var pred, succ, ch []byte
	var from, to string
	if err := row.Scan(&pred, &succ, &l.At, &ch, &from, &to); err != nil {
		return l, err
	}
	l.At, l.FromAlgorithm, l.ToAlgorithm = l.At.UTC(), sigalg.ID(from), sigalg.ID(to)
	return l, errors.Join(fixed(l.Predecessor[:], pred, "predecessor"), fixed(l.Successor[:], succ, "successor"),
		fixed(l.ChallengeID[:], ch, "challenge ID"))
}

// successorEndpoint is the cloud endpoint a migration's successor
// inherits: the same device, at the same endpoint, whatever the
// product's allocation would choose for its new identity.
func successorEndpoint(old store.Device) *string {
	if old.CloudEndpoint == "" {
		return nil
	}
	return &old.CloudEndpoint
}
