package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Lineage: migration challenges and migrations (migration 0013). SQLite
// has one writer, so the old device read at a transaction's start cannot
// change under it: that is the row lock.

const migrationChallengeColumns = `id, identity, nonce, server_name, target, issued_at, expires_at, used_at`

// migrationChallengeKeep is how long past its expiry a challenge is kept,
// so a late answer is told "expired" rather than "unknown".
const migrationChallengeKeep = time.Hour

// CreateMigrationChallenge stores c, deleting challenges that expired
// long ago (migrations are rare; no janitor is needed).
func (s *Store) CreateMigrationChallenge(ctx context.Context, c store.MigrationChallenge) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM migration_challenges WHERE expires_at < ?`,
			micros(c.IssuedAt.Add(-migrationChallengeKeep))); err != nil {
			return fmt.Errorf("delete expired: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO migration_challenges (`+migrationChallengeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`,
			c.ID[:], c.Identity[:], c.Nonce, c.ServerName, string(c.Target), micros(c.IssuedAt), micros(c.ExpiresAt))
		if isKeyTaken(err) {
			return store.ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: create migration challenge: %w", err)
	}
	return nil
}

// ConsumeMigrationChallenge marks the challenge used; the conditional
// update is the check, so of concurrent calls one succeeds.
func (s *Store) ConsumeMigrationChallenge(ctx context.Context, id [16]byte, now time.Time) (store.MigrationChallenge, error) {
	var c store.MigrationChallenge
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanMigrationChallenge(tx.QueryRowContext(ctx, `UPDATE migration_challenges SET used_at = ?
			WHERE id = ? AND used_at IS NULL AND expires_at > ? RETURNING `+migrationChallengeColumns, micros(now), id[:], micros(now)))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		c, err = scanMigrationChallenge(tx.QueryRowContext(ctx, `SELECT `+migrationChallengeColumns+` FROM migration_challenges WHERE id = ?`, id[:]))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case !c.UsedAt.IsZero():
			return store.ErrChallengeUsed
		}
		return store.ErrChallengeExpired
	})
	if err != nil {
		return store.MigrationChallenge{}, fmt.Errorf("sqlite: consume migration challenge %x: %w", id, err)
	}
	return c, nil
}

func scanMigrationChallenge(row scanner) (store.MigrationChallenge, error) {
	var c store.MigrationChallenge
	var id, ident []byte
	var target string
	var issued, expires int64
	var used sql.NullInt64
	if err := row.Scan(&id, &ident, &c.Nonce, &c.ServerName, &target, &issued, &expires, &used); err != nil {
		return c, err
	}
	c.Target, c.IssuedAt, c.ExpiresAt, c.UsedAt = sigalg.ID(target), fromMicros(issued), fromMicros(expires), fromNullMicros(used)
	return c, errors.Join(fixed(c.ID[:], id, "challenge ID"), fixed(c.Identity[:], ident, "identity"))
}

// passOperationalKeys gives the old identity's operational keys to the new
// one, through operational_keys_by_identity (migration 0015).
const passOperationalKeys = `UPDATE operational_keys SET identity = ? WHERE identity = ?`

// CompleteMigration applies m in one write transaction.
func (s *Store) CompleteMigration(ctx context.Context, m store.Migration) (store.MigrationResult, error) {
	var res store.MigrationResult
	if m.Audit.Time.IsZero() {
		m.Audit.Time = m.At
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = completeMigration(ctx, tx, m)
		return err
	})
	if err != nil {
		return store.MigrationResult{}, fmt.Errorf("sqlite: migrate %s to %s: %w", m.Old, m.New, err)
	}
	return res, nil
}

func completeMigration(ctx context.Context, tx *sql.Tx, m store.Migration) (store.MigrationResult, error) {
	var res store.MigrationResult
	old, err := scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE identity = ?`, m.Old[:]))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return res, store.ErrNotFound
	case err != nil:
		return res, fmt.Errorf("read device: %w", err)
	case old.State != store.StateOnboarded:
		return res, &store.StateError{State: old.State}
	}
	var taken int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE identity = ?`, m.New[:]).Scan(&taken); err != nil {
		return res, fmt.Errorf("read successor: %w", err)
	}
	if taken > 0 || m.Old == m.New {
		return res, fmt.Errorf("%w: the new identity is registered already", store.ErrLineage)
	}
	at := m.At
	_, err = tx.ExecContext(ctx, `INSERT INTO devices (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'registered', ?, NULL, NULL, '', NULL, '', ?, ?)`,
		m.New[:], string(m.NewAlgorithm), m.NewPublicKey, old.RootOfTrust, old.Injection, old.BatchID, old.StationID[:],
		old.ProductID, micros(at), old.Locks, successorEndpoint(old))
	if err != nil {
		return res, fmt.Errorf("register successor: %w", err)
	}
	if _, err := tx.ExecContext(ctx, passOperationalKeys, m.New[:], m.Old[:]); err != nil {
		return res, fmt.Errorf("pass operational keys: %w", err)
	}
	cert := m.Certificate
	cert.Identity = m.New
	if err := recordOnboarding(ctx, tx, cert, at, store.IssuanceLimit{}, nil); err != nil {
		return res, err
	}
	revoked, err := tx.ExecContext(ctx, `UPDATE certificates SET revoked_at = ?, revocation_reason = ?
		WHERE identity = ? AND (revoked_at IS NULL OR revocation_reason = ?)`, micros(at), store.ReasonSuperseded, m.Old[:], store.ReasonCertificateHold)
	if err != nil {
		return res, fmt.Errorf("revoke certificates: %w", err)
	}
	n, _ := revoked.RowsAffected()
	res.Revoked = int(n)
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET state = 'migrated', state_changed_at = ?, state_reason = ? WHERE identity = ?`,
		micros(at), store.MigrationReason(m.New), m.Old[:]); err != nil {
		return res, fmt.Errorf("retire old identity: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO device_lineage (predecessor, successor, migrated_at, challenge_id, from_algorithm, to_algorithm)
		VALUES (?, ?, ?, ?, ?, ?)`, m.Old[:], m.New[:], micros(at), m.ChallengeID[:], string(old.Algorithm), string(m.NewAlgorithm))
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
	const q = `SELECT ` + deviceColumns + ` FROM devices WHERE identity = ?`
	if res.Predecessor, err = scanDevice(tx.QueryRowContext(ctx, q, m.Old[:])); err != nil {
		return res, fmt.Errorf("read device: %w", err)
	}
	if res.Successor, err = scanDevice(tx.QueryRowContext(ctx, q, m.New[:])); err != nil {
		return res, fmt.Errorf("read successor: %w", err)
	}
	return res, nil
}

// GetLineage reads a device's two links, if any.
func (s *Store) GetLineage(ctx context.Context, id identity.ID) (store.DeviceLineage, error) {
	const q = `SELECT predecessor, successor, migrated_at, challenge_id, from_algorithm, to_algorithm FROM device_lineage
		WHERE predecessor = ? OR successor = ?`
	links, err := queryAll(ctx, s.reader, q, []any{id[:], id[:]}, scanLineageLink)
	if err != nil {
		return store.DeviceLineage{}, fmt.Errorf("sqlite: lineage of %s: %w", id, err)
	}
	return lineageOf(id, links), nil
}

func scanLineageLink(row scanner) (store.LineageLink, error) {
	var l store.LineageLink
	var pred, succ, ch []byte
	var at int64
	var from, to string
	if err := row.Scan(&pred, &succ, &at, &ch, &from, &to); err != nil {
		return l, err
	}
	l.At, l.FromAlgorithm, l.ToAlgorithm = fromMicros(at), sigalg.ID(from), sigalg.ID(to)
	return l, errors.Join(fixed(l.Predecessor[:], pred, "predecessor"), fixed(l.Successor[:], succ, "successor"),
		fixed(l.ChallengeID[:], ch, "challenge ID"))
}

// lineageOf sorts the links of id into its predecessor's and successor's.
func lineageOf(id identity.ID, links []store.LineageLink) store.DeviceLineage {
	var l store.DeviceLineage
	for i := range links {
		link := links[i]
		if bytes.Equal(link.Successor[:], id[:]) {
			l.Predecessor = &link
		} else {
			l.Successor = &link
		}
	}
	return l
}

// successorEndpoint is the cloud endpoint a migration's successor
// inherits: the same device, at the same endpoint, whatever the
// product's allocation would choose for its new identity.
func successorEndpoint(old store.Device) any {
	if old.CloudEndpoint == "" {
		return nil
	}
	return old.CloudEndpoint
}
