package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The renewal policy's writes (store.Renewals; migration 0006).

const (
	selectCurrentNotAfter = `SELECT not_after FROM certificates WHERE identity = ? AND superseded_at IS NULL
		ORDER BY issued_at DESC, rowid DESC LIMIT 1`
	deleteRenewalGrant = `DELETE FROM renewal_grants WHERE identity = ?`
)

// RenewCertificate records a renewal under terms in one write. SQLite
// has one writer, so nothing changes the device between the checks and
// the write.
func (s *Store) RenewCertificate(ctx context.Context, cert store.Certificate, at time.Time, terms store.RenewalTerms, jobs ...store.Job) (bool, error) {
	var forced bool
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if forced, err = checkRenewalDue(ctx, tx, cert.Identity, at, terms.Window); err != nil {
			return err
		}
		return recordOnboarding(ctx, tx, cert, at, terms.Limit, jobs)
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: renew certificate: %w", err)
	}
	return forced, nil
}

// checkRenewalDue refuses a renewal before the device's current
// certificate is due unless a grant is pending, and consumes the grant.
// A device that may not hold a certificate, or has none, is left to
// recordOnboarding to refuse or record.
func checkRenewalDue(ctx context.Context, tx *sql.Tx, id identity.ID, at time.Time, window time.Duration) (forced bool, err error) {
	var state string
	err = tx.QueryRowContext(ctx, selectDeviceState, id[:]).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !store.MayHoldCertificate(store.DeviceState(state))) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read device: %w", err)
	}
	dueAt := time.Time{}
	var notAfter int64
	switch err := tx.QueryRowContext(ctx, selectCurrentNotAfter, id[:]).Scan(&notAfter); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, fmt.Errorf("read current certificate: %w", err)
	default:
		dueAt = store.RenewalDueAt(fromMicros(notAfter), window)
	}
	res, err := tx.ExecContext(ctx, deleteRenewalGrant, id[:])
	if err != nil {
		return false, fmt.Errorf("consume renewal grant: %w", err)
	}
	granted, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("consume renewal grant: %w", err)
	}
	if at.Before(dueAt) {
		if granted == 0 {
			return false, fmt.Errorf("device %s: %w", id, &store.RenewalNotDueError{DueAt: dueAt})
		}
		return true, nil
	}
	return false, nil
}

// GrantRenewal records g, replacing the device's pending grant.
func (s *Store) GrantRenewal(ctx context.Context, g store.RenewalGrant) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, selectDeviceState, g.Identity[:]).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return fmt.Errorf("read device: %w", err)
		case store.DeviceState(state) != store.StateOnboarded:
			return &store.StateError{State: store.DeviceState(state)}
		}
		const q = `INSERT INTO renewal_grants (identity, granted_at, reason) VALUES (?, ?, ?)
			ON CONFLICT (identity) DO UPDATE SET granted_at = excluded.granted_at, reason = excluded.reason`
		if _, err := tx.ExecContext(ctx, q, g.Identity[:], micros(g.GrantedAt), g.Reason); err != nil {
			return fmt.Errorf("record grant: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: grant renewal to %s: %w", g.Identity, err)
	}
	return nil
}

// GetRenewalGrant returns the device's pending grant.
func (s *Store) GetRenewalGrant(ctx context.Context, id identity.ID) (store.RenewalGrant, error) {
	const q = `SELECT granted_at, reason FROM renewal_grants WHERE identity = ?`
	g := store.RenewalGrant{Identity: id}
	var granted int64
	err := s.reader.QueryRowContext(ctx, q, id[:]).Scan(&granted, &g.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return store.RenewalGrant{}, fmt.Errorf("sqlite: renewal grant of %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.RenewalGrant{}, fmt.Errorf("sqlite: renewal grant of %s: %w", id, err)
	}
	g.GrantedAt = fromMicros(granted)
	return g, nil
}

// RevokeSuperseded revokes one batch of superseded certificates, found
// through the partial index certificates_superseded_pending (INDEXED BY
// makes a query that cannot use it an error, not a table scan).
func (s *Store) RevokeSuperseded(ctx context.Context, supersededBy, at time.Time, limit int) (int, error) {
	const pending = `superseded_at IS NOT NULL AND (revoked_at IS NULL OR revocation_reason = 6)`
	const q = `UPDATE certificates SET revoked_at = ?, revocation_reason = ?
		WHERE serial IN (SELECT serial FROM certificates INDEXED BY certificates_superseded_pending
			WHERE ` + pending + ` AND superseded_at <= ? ORDER BY superseded_at LIMIT ?)`
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, micros(at), store.ReasonSuperseded, micros(supersededBy), store.RevokedPageLimit(limit))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: revoke superseded certificates: %w", err)
	}
	return int(n), nil
}
