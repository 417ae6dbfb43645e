package sqlite

import (
	"bytes"
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

const certificateColumns = `serial, identity, not_before, not_after, der, issued_at, revoked_at, key_hash, superseded_at, revocation_reason`

// The statements of an onboarding's write (prepared once: prepared.go).
const (
	selectDeviceState = `SELECT state FROM devices WHERE identity = ?`
	countRecentCerts  = `SELECT count(*), min(issued_at) FROM certificates WHERE identity = ? AND issued_at > ?`
	claimKey          = `INSERT INTO operational_keys (key_hash, identity, certified_at) VALUES (?, ?, ?)
		ON CONFLICT (key_hash) DO NOTHING`
	selectKeyHolder   = `SELECT identity FROM operational_keys WHERE key_hash = ?`
	supersedeCerts    = `UPDATE certificates SET superseded_at = ? WHERE identity = ? AND superseded_at IS NULL`
	insertCertificate = `INSERT INTO certificates (` + certificateColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0)`
	onboardDevice     = `UPDATE devices SET state = 'onboarded', onboarded_at = coalesce(onboarded_at, ?)
		WHERE identity = ?`
)

// RecordOnboarding stores cert and moves its device to onboarded, in one
// transaction. IssuedAt defaults to at. A renewal (the device is already
// onboarded) adds the certificate and keeps the first OnboardedAt; the
// device's earlier certificates are superseded. jobs are enqueued in the
// same transaction.
func (s *Store) RecordOnboarding(ctx context.Context, cert store.Certificate, at time.Time, jobs ...store.Job) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return recordOnboarding(ctx, tx, cert, at, store.IssuanceLimit{}, jobs)
	})
	if err != nil {
		return fmt.Errorf("sqlite: record onboarding: %w", err)
	}
	return nil
}

// RecordRenewal is RecordOnboarding under an issuance limit. SQLite has
// one writer, so the count cannot race another renewal's insert.
func (s *Store) RecordRenewal(ctx context.Context, cert store.Certificate, at time.Time, limit store.IssuanceLimit, jobs ...store.Job) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return recordOnboarding(ctx, tx, cert, at, limit, jobs)
	})
	if err != nil {
		return fmt.Errorf("sqlite: record renewal: %w", err)
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
		if err := recordOnboarding(ctx, tx, cert, at, store.IssuanceLimit{}, jobs); err != nil {
			return err
		}
		_, err := appendAudit(ctx, tx, audit)
		return err
	})
	if err != nil {
		s.challenges.unconsume(challengeID)
		return fmt.Errorf("sqlite: complete onboarding: %w", err)
	}
	return nil
}

// recordOnboarding is the certificate's write: the device must exist and
// may hold a certificate (registered or onboarded), the device must be under limit, and the key must not be
// certified for another device; then the device's current certificates
// are superseded and the new one recorded.
func recordOnboarding(ctx context.Context, tx *sql.Tx, cert store.Certificate, at time.Time, limit store.IssuanceLimit, jobs []store.Job) error {
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
	case !store.MayHoldCertificate(store.DeviceState(state)):
		return fmt.Errorf("device %s: %w", cert.Identity, &store.StateError{State: store.DeviceState(state)})
	}
	if err := checkIssuanceLimit(ctx, tx, cert.Identity, at, limit); err != nil {
		return err
	}
	var keyHash any // NULL for a certificate without one
	if cert.KeyHash != ([32]byte{}) {
		keyHash = cert.KeyHash[:]
		if err := claimOperationalKey(ctx, tx, cert.KeyHash, cert.Identity, at); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, supersedeCerts, micros(at), cert.Identity[:]); err != nil {
		return fmt.Errorf("supersede certificates: %w", err)
	}
	_, err = tx.ExecContext(ctx, insertCertificate, cert.Serial[:], cert.Identity[:], micros(cert.NotBefore),
		micros(cert.NotAfter), cert.DER, micros(cert.IssuedAt), nullMicros(cert.RevokedAt), keyHash)
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

// checkIssuanceLimit refuses when the device holds limit.Max certificates
// issued within limit.Window before at.
func checkIssuanceLimit(ctx context.Context, tx *sql.Tx, id identity.ID, at time.Time, limit store.IssuanceLimit) error {
	if limit.Max <= 0 {
		return nil
	}
	var n int
	var oldest sql.NullInt64
	if err := tx.QueryRowContext(ctx, countRecentCerts, id[:], micros(at.Add(-limit.Window))).Scan(&n, &oldest); err != nil {
		return fmt.Errorf("count certificates: %w", err)
	}
	if n >= limit.Max {
		return fmt.Errorf("device %s: %d certificates since %s: %w", id, n,
			at.Add(-limit.Window).UTC().Format(time.RFC3339), &store.IssuanceLimitError{RetryAt: fromNullMicros(oldest).Add(limit.Window)})
	}
	return nil
}

// claimOperationalKey records that key is certified for id, or refuses if
// it is certified for another device. The insert is the check: the key is
// the table's primary key.
func claimOperationalKey(ctx context.Context, tx *sql.Tx, key [32]byte, id identity.ID, at time.Time) error {
	res, err := tx.ExecContext(ctx, claimKey, key[:], id[:], micros(at))
	if err != nil {
		return fmt.Errorf("record operational key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var holder []byte
	if err := tx.QueryRowContext(ctx, selectKeyHolder, key[:]).Scan(&holder); err != nil {
		return fmt.Errorf("read operational key: %w", err)
	}
	if !bytes.Equal(holder, id[:]) {
		return fmt.Errorf("operational key %x: %w", key[:8], store.ErrKeyInUse)
	}
	return nil
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
	var keyHash []byte
	var revoked, superseded sql.NullInt64
	if err := row.Scan(&serial, &ident, &notBefore, &notAfter, &c.DER, &issued, &revoked, &keyHash, &superseded, &c.RevocationReason); err != nil {
		return store.Certificate{}, err
	}
	c.NotBefore = fromMicros(notBefore)
	c.NotAfter = fromMicros(notAfter)
	c.IssuedAt = fromMicros(issued)
	c.RevokedAt = fromNullMicros(revoked)
	c.SupersededAt = fromNullMicros(superseded)
	var keyErr error
	if keyHash != nil {
		keyErr = fixed(c.KeyHash[:], keyHash, "key hash")
	}
	return c, errors.Join(fixed(c.Serial[:], serial, "serial"), fixed(c.Identity[:], ident, "identity"), keyErr)
}
