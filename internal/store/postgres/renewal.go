package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The renewal policy's writes (store.Renewals; migration 0007).

// RenewCertificate records a renewal under terms in one transaction. The
// device row is locked first (FOR UPDATE, as hallmark_record_certificate
// and the transitions lock it), so a concurrent renewal in any replica
// either committed before and superseded the certificate checked here,
// or waits and then finds this one's.
func (s *Store) RenewCertificate(ctx context.Context, cert store.Certificate, at time.Time, terms store.RenewalTerms, jobs ...store.Job) (bool, error) {
	var forced bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if forced, err = checkRenewalDue(ctx, tx, cert.Identity, at, terms.Window); err != nil {
			return err
		}
		return recordOnboarding(ctx, tx, cert, at, terms.Limit, jobs)
	})
	if err != nil {
		return false, fmt.Errorf("postgres: renew certificate: %w", err)
	}
	return forced, nil
}

// checkRenewalDue locks the device, then refuses a renewal before its
// current certificate is due unless a grant is pending, and consumes the
// grant. A device that may not hold a certificate, or has none, is left
// to hallmark_record_certificate to refuse or record.
func checkRenewalDue(ctx context.Context, tx pgx.Tx, id identity.ID, at time.Time, window time.Duration) (forced bool, err error) {
	var state string
	err = tx.QueryRow(ctx, `SELECT state FROM devices WHERE identity = $1 FOR UPDATE`, id[:]).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !store.MayHoldCertificate(store.DeviceState(state))) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock device: %w", err)
	}
	dueAt := time.Time{}
	var notAfter time.Time
	const current = `SELECT not_after FROM certificates WHERE identity = $1 AND superseded_at IS NULL
		ORDER BY issued_at DESC, seq DESC LIMIT 1`
	switch err := tx.QueryRow(ctx, current, id[:]).Scan(&notAfter); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return false, fmt.Errorf("read current certificate: %w", err)
	default:
		dueAt = store.RenewalDueAt(notAfter, window)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM renewal_grants WHERE identity = $1`, id[:])
	if err != nil {
		return false, fmt.Errorf("consume renewal grant: %w", err)
	}
	if at.Before(dueAt) {
		if tag.RowsAffected() == 0 {
			return false, fmt.Errorf("device %s: %w", id, &store.RenewalNotDueError{DueAt: dueAt.UTC()})
		}
		return true, nil
	}
	return false, nil
}

// GrantRenewal records g under the device's row lock, replacing the
// device's pending grant.
func (s *Store) GrantRenewal(ctx context.Context, g store.RenewalGrant) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM devices WHERE identity = $1 FOR UPDATE`, g.Identity[:]).Scan(&state)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return fmt.Errorf("lock device: %w", err)
		case store.DeviceState(state) != store.StateOnboarded:
			return &store.StateError{State: store.DeviceState(state)}
		}
		const q = `INSERT INTO renewal_grants (identity, granted_at, reason) VALUES ($1, $2, $3)
			ON CONFLICT (identity) DO UPDATE SET granted_at = excluded.granted_at, reason = excluded.reason`
		if _, err := tx.Exec(ctx, q, g.Identity[:], g.GrantedAt, g.Reason); err != nil {
			return fmt.Errorf("record grant: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: grant renewal to %s: %w", g.Identity, err)
	}
	return nil
}

// GetRenewalGrant returns the device's pending grant.
func (s *Store) GetRenewalGrant(ctx context.Context, id identity.ID) (store.RenewalGrant, error) {
	g := store.RenewalGrant{Identity: id}
	err := s.pool.QueryRow(ctx, `SELECT granted_at, reason FROM renewal_grants WHERE identity = $1`, id[:]).Scan(&g.GrantedAt, &g.Reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.RenewalGrant{}, fmt.Errorf("postgres: renewal grant of %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.RenewalGrant{}, fmt.Errorf("postgres: renewal grant of %s: %w", id, err)
	}
	g.GrantedAt = g.GrantedAt.UTC()
	return g, nil
}

// RevokeSuperseded revokes one batch of superseded certificates, found
// through the partial index certificates_superseded_pending. Replicas
// sweeping at once split the work: SKIP LOCKED passes over rows another
// sweep is revoking, and the UPDATE's own condition, re-checked on the
// row it locks, leaves one revoked meanwhile as it is.
func (s *Store) RevokeSuperseded(ctx context.Context, supersededBy, at time.Time, limit int) (int, error) {
	const pending = `superseded_at IS NOT NULL AND (revoked_at IS NULL OR revocation_reason = 6)`
	const q = `UPDATE certificates SET revoked_at = $1, revocation_reason = $2
		WHERE serial IN (SELECT serial FROM certificates
			WHERE ` + pending + ` AND superseded_at <= $3 ORDER BY superseded_at LIMIT $4 FOR UPDATE SKIP LOCKED)
		AND ` + pending
	tag, err := s.pool.Exec(ctx, q, at, store.ReasonSuperseded, supersededBy, store.RevokedPageLimit(limit))
	if err != nil {
		return 0, fmt.Errorf("postgres: revoke superseded certificates: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
