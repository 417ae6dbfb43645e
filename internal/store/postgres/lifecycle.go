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

// RevokeDevice revokes a device with TransitionDevice, enqueueing jobs
// whatever the device was.
func (s *Store) RevokeDevice(ctx context.Context, id identity.ID, note string, at time.Time, jobs ...store.Job) error {
	_, err := s.TransitionDevice(ctx, id, store.TransitionRequest{Transition: store.TransitionRevoke, Reason: note, At: at,
		Jobs: func(store.Device) []store.Job { return jobs }})
	return err
}

// TransitionDevice applies req in one transaction. The device row is
// locked first (FOR UPDATE), as hallmark_record_certificate locks it: a
// concurrent onboarding or transition, in any replica, either ends before
// and is seen, or waits and then sees this one's result.
func (s *Store) TransitionDevice(ctx context.Context, id identity.ID, req store.TransitionRequest) (store.TransitionResult, error) {
	var res store.TransitionResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		const q = `SELECT ` + deviceColumns + ` FROM devices WHERE identity = $1 FOR UPDATE`
		before, err := scanDevice(tx.QueryRow(ctx, q, id[:]))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read device: %w", err)
		}
		res = store.TransitionResult{Device: before, From: before.State}
		if _, res.Changed, err = store.PlanTransition(before, req); err != nil || !res.Changed {
			return err
		}
		res.Device = req.Apply(before)
		if err := writeTransition(ctx, tx, res.Device, req); err != nil {
			return err
		}
		return enqueueJobs(ctx, tx, id[:], req.At, req.JobsFor(before))
	})
	if err != nil {
		return store.TransitionResult{}, fmt.Errorf("postgres: %s device %s: %w", req.Transition, id, err)
	}
	return res, nil
}

// writeTransition writes the device d became and changes its
// certificates as req's transition says.
func writeTransition(ctx context.Context, tx pgx.Tx, d store.Device, req store.TransitionRequest) error {
	const device = `UPDATE devices SET state = $1, onboarded_at = $2, revoked_at = $3, revoke_note = $4,
		state_changed_at = $5, state_reason = $6 WHERE identity = $7`
	if _, err := tx.Exec(ctx, device, string(d.State), nullTime(d.OnboardedAt), nullTime(d.RevokedAt),
		d.RevokeNote, nullTime(d.StateChangedAt), d.StateReason, d.Identity[:]); err != nil {
		return fmt.Errorf("update device: %w", err)
	}
	if reason, ok := req.Transition.CertificateReason(); ok {
		// A hold is replaced by the final reason; a certificate revoked
		// for another reason (superseded) keeps it.
		const certs = `UPDATE certificates SET revoked_at = $1, revocation_reason = $2
			WHERE identity = $3 AND (revoked_at IS NULL OR revocation_reason = $4)`
		if _, err := tx.Exec(ctx, certs, req.At, reason, d.Identity[:], store.ReasonCertificateHold); err != nil {
			return fmt.Errorf("revoke certificates: %w", err)
		}
	}
	if req.Transition.ReleasesHold() {
		const release = `UPDATE certificates SET revoked_at = NULL, revocation_reason = 0
			WHERE identity = $1 AND revoked_at IS NOT NULL AND revocation_reason = $2`
		if _, err := tx.Exec(ctx, release, d.Identity[:], store.ReasonCertificateHold); err != nil {
			return fmt.Errorf("release certificates: %w", err)
		}
	}
	return nil
}

// ListRevokedCertificates returns one page of revoked certificates by
// expiry and serial, from the partial index certificates_revoked_by_expiry
// (migration 0011): the row-value bound is one range scan of it.
func (s *Store) ListRevokedCertificates(ctx context.Context, after store.RevokedCursor, limit int) ([]store.RevokedCertificate, error) {
	const q = `SELECT serial, revoked_at, revocation_reason, not_after FROM certificates
		WHERE revoked_at IS NOT NULL AND (not_after, serial) > ($1, $2) ORDER BY not_after, serial LIMIT $3`
	list, err := queryAll(ctx, s.pool, q, []any{after.NotAfter, after.Serial[:], store.RevokedPageLimit(limit)}, func(row pgx.Row) (store.RevokedCertificate, error) {
		var rc store.RevokedCertificate
		var serial []byte
		if err := row.Scan(&serial, &rc.RevokedAt, &rc.Reason, &rc.NotAfter); err != nil {
			return rc, err
		}
		rc.RevokedAt, rc.NotAfter = rc.RevokedAt.UTC(), rc.NotAfter.UTC()
		return rc, fixed(rc.Serial[:], serial, "serial")
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list revoked certificates: %w", err)
	}
	return list, nil
}

// RevokeCertificate revokes one certificate and appends audit in one
// transaction; a certificate revoked or held already is left as it is.
// The UPDATE's row lock orders it with a transition of the device, which
// updates the same row.
func (s *Store) RevokeCertificate(ctx context.Context, serial [16]byte, reason int, at time.Time, audit store.AuditEvent) (bool, error) {
	if audit.Time.IsZero() {
		audit.Time = at
	}
	changed := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		changed = false
		tag, err := tx.Exec(ctx, `UPDATE certificates SET revoked_at = $1, revocation_reason = $2
			WHERE serial = $3 AND revoked_at IS NULL`, at, reason, serial[:])
		if err != nil {
			return fmt.Errorf("revoke certificate: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM certificates WHERE serial = $1`, serial[:]).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("certificate %x: %w", serial, store.ErrNotFound)
			}
			return err
		}
		changed = true
		_, err = appendAudit(ctx, tx, audit)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: revoke certificate: %w", err)
	}
	return changed, nil
}
