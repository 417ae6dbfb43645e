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

// Certificates: the writes of the onboarding protocol (challenges are in
// challenges.go).

const certificateColumns = `serial, identity, not_before, not_after, der, issued_at, revoked_at`

// The statements of an onboarding's write (prepared once: prepared.go).
const (
	selectDeviceState = `SELECT state FROM devices WHERE identity = ?`
	insertCertificate = `INSERT INTO certificates (` + certificateColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	onboardDevice     = `UPDATE devices SET state = 'onboarded', onboarded_at = coalesce(onboarded_at, ?)
		WHERE identity = ?`
)

// RecordOnboarding stores cert and moves its device to onboarded, in one
// transaction. IssuedAt defaults to at. A renewal (the device is already
// onboarded) adds the certificate and keeps the first OnboardedAt. jobs are
// enqueued in the same transaction.
func (s *Store) RecordOnboarding(ctx context.Context, cert store.Certificate, at time.Time, jobs ...store.Job) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return recordOnboarding(ctx, s.preparedTx(tx), cert, at, jobs)
	})
	if err != nil {
		return fmt.Errorf("sqlite: record onboarding: %w", err)
	}
	return nil
}

// CompleteOnboarding consumes the challenge (in memory), then records the
// onboarding and its jobs and appends the audit event in one transaction;
// if that fails, the challenge is given back unused.
func (s *Store) CompleteOnboarding(ctx context.Context, challengeID [16]byte, cert store.Certificate, at time.Time, audit store.AuditEvent, jobs ...store.Job) error {
	if audit.Time.IsZero() {
		audit.Time = at
	}
	if _, err := s.challenges.consume(challengeID, at); err != nil {
		return fmt.Errorf("sqlite: complete onboarding: %w", err)
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		ptx := s.preparedTx(tx)
		if err := recordOnboarding(ctx, ptx, cert, at, jobs); err != nil {
			return err
		}
		_, err := appendAudit(ctx, ptx, audit)
		return err
	})
	if err != nil {
		s.challenges.unconsume(challengeID)
		return fmt.Errorf("sqlite: complete onboarding: %w", err)
	}
	return nil
}

func recordOnboarding(ctx context.Context, tx preparedTx, cert store.Certificate, at time.Time, jobs []store.Job) error {
	if cert.IssuedAt.IsZero() {
		cert.IssuedAt = at
	}
	var state string
	err := tx.QueryRowContext(ctx, selectDeviceState, cert.Identity[:]).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("device %s: %w", cert.Identity, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("read device: %w", err)
	case state == string(store.StateRevoked):
		return fmt.Errorf("device %s is revoked: %w", cert.Identity, store.ErrConflict)
	}
	_, err = tx.ExecContext(ctx, insertCertificate, cert.Serial[:], cert.Identity[:], micros(cert.NotBefore),
		micros(cert.NotAfter), cert.DER, micros(cert.IssuedAt), nullMicros(cert.RevokedAt))
	if isKeyTaken(err) {
		return fmt.Errorf("certificate serial %x: %w", cert.Serial, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("insert certificate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, onboardDevice, micros(at), cert.Identity[:]); err != nil {
		return fmt.Errorf("update device: %w", err)
	}
	return enqueueJobs(ctx, tx, cert.Identity[:], at, jobs)
}

// GetCertificate returns one certificate or store.ErrNotFound.
func (s *Store) GetCertificate(ctx context.Context, serial [16]byte) (store.Certificate, error) {
	const q = `SELECT ` + certificateColumns + ` FROM certificates WHERE serial = ?`
	c, err := scanCertificate(s.reader.QueryRowContext(ctx, q, serial[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Certificate{}, fmt.Errorf("sqlite: certificate %x: %w", serial, store.ErrNotFound)
	}
	if err != nil {
		return store.Certificate{}, fmt.Errorf("sqlite: get certificate %x: %w", serial, err)
	}
	return c, nil
}

// ListCertificates returns a device's certificates, newest first; for an
// unknown device, none.
func (s *Store) ListCertificates(ctx context.Context, id identity.ID) ([]store.Certificate, error) {
	const q = `SELECT ` + certificateColumns + ` FROM certificates WHERE identity = ?
		ORDER BY issued_at DESC, rowid DESC`
	list, err := queryAll(ctx, s.reader, q, []any{id[:]}, scanCertificate)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list certificates of %s: %w", id, err)
	}
	return list, nil
}

func scanCertificate(row scanner) (store.Certificate, error) {
	var c store.Certificate
	var serial, ident []byte
	var notBefore, notAfter, issued int64
	var revoked sql.NullInt64
	if err := row.Scan(&serial, &ident, &notBefore, &notAfter, &c.DER, &issued, &revoked); err != nil {
		return store.Certificate{}, err
	}
	c.NotBefore = fromMicros(notBefore)
	c.NotAfter = fromMicros(notAfter)
	c.IssuedAt = fromMicros(issued)
	c.RevokedAt = fromNullMicros(revoked)
	return c, errors.Join(fixed(c.Serial[:], serial, "serial"), fixed(c.Identity[:], ident, "identity"))
}
