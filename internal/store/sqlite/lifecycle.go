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

// RevokeDevice revokes a device with TransitionDevice, enqueueing jobs
// whatever the device was.
func (s *Store) RevokeDevice(ctx context.Context, id identity.ID, note string, at time.Time, jobs ...store.Job) error {
	_, err := s.TransitionDevice(ctx, id, store.TransitionRequest{Transition: store.TransitionRevoke, Reason: note, At: at,
		Jobs: func(store.Device) []store.Job { return jobs }})
	return err
}

// TransitionDevice applies req in one write transaction. SQLite has one
// writer, so the device read at its start cannot change under it: that
// is the row lock.
func (s *Store) TransitionDevice(ctx context.Context, id identity.ID, req store.TransitionRequest) (store.TransitionResult, error) {
	var res store.TransitionResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		const q = `SELECT ` + deviceColumns + ` FROM devices WHERE identity = ?`
		before, err := scanDevice(tx.QueryRowContext(ctx, q, id[:]))
		if errors.Is(err, sql.ErrNoRows) {
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
		return store.TransitionResult{}, fmt.Errorf("sqlite: %s device %s: %w", req.Transition, id, err)
	}
	return res, nil
}

// writeTransition writes the device d became and changes its
// certificates as req's transition says.
func writeTransition(ctx context.Context, tx *sql.Tx, d store.Device, req store.TransitionRequest) error {
	const device = `UPDATE devices SET state = ?, onboarded_at = ?, revoked_at = ?, revoke_note = ?,
		state_changed_at = ?, state_reason = ? WHERE identity = ?`
	if _, err := tx.ExecContext(ctx, device, string(d.State), nullMicros(d.OnboardedAt), nullMicros(d.RevokedAt),
		d.RevokeNote, nullMicros(d.StateChangedAt), d.StateReason, d.Identity[:]); err != nil {
		return fmt.Errorf("update device: %w", err)
	}
	if reason, ok := req.Transition.CertificateReason(); ok {
		// A hold is replaced by the final reason; a certificate revoked
		// for another reason (superseded) keeps it.
		const certs = `UPDATE certificates SET revoked_at = ?, revocation_reason = ?
			WHERE identity = ? AND (revoked_at IS NULL OR revocation_reason = ?)`
		if _, err := tx.ExecContext(ctx, certs, micros(req.At), reason, d.Identity[:], store.ReasonCertificateHold); err != nil {
			return fmt.Errorf("revoke certificates: %w", err)
		}
	}
	if req.Transition.ReleasesHold() {
		const release = `UPDATE certificates SET revoked_at = NULL, revocation_reason = 0
			WHERE identity = ? AND revoked_at IS NOT NULL AND revocation_reason = ?`
		if _, err := tx.ExecContext(ctx, release, d.Identity[:], store.ReasonCertificateHold); err != nil {
			return fmt.Errorf("release certificates: %w", err)
		}
	}
	return nil
}

// ListRevokedCertificates returns one page of revoked certificates by
// expiry and serial, from the partial index certificates_revoked_by_expiry
// (migration 0010): the row-value bound is one range scan of it.
func (s *Store) ListRevokedCertificates(ctx context.Context, after store.RevokedCursor, limit int) ([]store.RevokedCertificate, error) {
	const q = `SELECT serial, revoked_at, revocation_reason, not_after FROM certificates INDEXED BY certificates_revoked_by_expiry
		WHERE revoked_at IS NOT NULL AND (not_after, serial) > (?, ?) ORDER BY not_after, serial LIMIT ?`
	list, err := queryAll(ctx, s.reader, q, []any{micros(after.NotAfter), after.Serial[:], store.RevokedPageLimit(limit)}, func(row scanner) (store.RevokedCertificate, error) {
		var rc store.RevokedCertificate
		var serial []byte
		var revoked, notAfter int64
		if err := row.Scan(&serial, &revoked, &rc.Reason, &notAfter); err != nil {
			return rc, err
		}
		rc.RevokedAt, rc.NotAfter = fromMicros(revoked), fromMicros(notAfter)
		return rc, fixed(rc.Serial[:], serial, "serial")
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list revoked certificates: %w", err)
	}
	return list, nil
}

// RevokeCertificate revokes one certificate and appends audit in one
// transaction; a certificate revoked or held already is left as it is.
func (s *Store) RevokeCertificate(ctx context.Context, serial [16]byte, reason int, at time.Time, audit store.AuditEvent) (bool, error) {
	if audit.Time.IsZero() {
		audit.Time = at
	}
	changed := false
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE certificates SET revoked_at = ?, revocation_reason = ?
			WHERE serial = ? AND revoked_at IS NULL`, micros(at), reason, serial[:])
		if err != nil {
			return fmt.Errorf("revoke certificate: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return err
			}
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM certificates WHERE serial = ?`, serial[:]).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("certificate %x: %w", serial, store.ErrNotFound)
			}
			return err
		}
		changed = true
		_, err = appendAudit(ctx, tx, audit)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: revoke certificate: %w", err)
	}
	return changed, nil
}
