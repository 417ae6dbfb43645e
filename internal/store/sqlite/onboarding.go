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

// Challenges and certificates: the writes of the onboarding protocol.

// CreateChallenge stores a fresh challenge; a taken ID is store.ErrExists.
// The identity need not be registered: the protocol answers unknown
// identities exactly like known ones.
func (s *Store) CreateChallenge(ctx context.Context, c store.Challenge) error {
	const q = `INSERT INTO challenges (id, identity, nonce, server_name, issued_at, expires_at, used_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`
	_, err := s.writer.ExecContext(ctx, q, c.ID[:], c.Identity[:], c.Nonce[:], c.ServerName,
		micros(c.IssuedAt), micros(c.ExpiresAt), nullMicros(c.UsedAt))
	if isKeyTaken(err) {
		return fmt.Errorf("sqlite: create challenge: %w", store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create challenge: %w", err)
	}
	return nil
}

// ConsumeChallenge marks the challenge used at now and returns it. The
// UPDATE's WHERE clause is the single-use check, so of concurrent calls
// exactly one changes the row; a failed call then reads the row in the
// same transaction to say why. A challenge is expired once now reaches
// ExpiresAt.
func (s *Store) ConsumeChallenge(ctx context.Context, id [16]byte, now time.Time) (store.Challenge, error) {
	var c store.Challenge
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		const consume = `UPDATE challenges SET used_at = ?1
			WHERE id = ?2 AND used_at IS NULL AND expires_at > ?1
			RETURNING id, identity, nonce, server_name, issued_at, expires_at, used_at`
		var err error
		c, err = scanChallenge(tx.QueryRowContext(ctx, consume, micros(now), id[:]))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var used sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT used_at FROM challenges WHERE id = ?`, id[:]).Scan(&used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case used.Valid:
			return store.ErrChallengeUsed
		}
		return store.ErrChallengeExpired
	})
	if err != nil {
		return store.Challenge{}, fmt.Errorf("sqlite: consume challenge: %w", err)
	}
	return c, nil
}

func scanChallenge(row scanner) (store.Challenge, error) {
	var c store.Challenge
	var id, ident, nonce []byte
	var issued, expires int64
	var used sql.NullInt64
	if err := row.Scan(&id, &ident, &nonce, &c.ServerName, &issued, &expires, &used); err != nil {
		return store.Challenge{}, err
	}
	c.IssuedAt = fromMicros(issued)
	c.ExpiresAt = fromMicros(expires)
	c.UsedAt = fromNullMicros(used)
	return c, errors.Join(fixed(c.ID[:], id, "challenge ID"),
		fixed(c.Identity[:], ident, "identity"), fixed(c.Nonce[:], nonce, "nonce"))
}

// DeleteExpiredChallenges removes challenges, used or not, whose expiry is
// before the given time, and returns how many.
func (s *Store) DeleteExpiredChallenges(ctx context.Context, before time.Time) (int, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM challenges WHERE expires_at < ?`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired challenges: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired challenges: %w", err)
	}
	return int(n), nil
}

const certificateColumns = `serial, identity, not_before, not_after, der, issued_at, revoked_at`

// RecordOnboarding stores cert and moves its device to onboarded, in one
// transaction. IssuedAt defaults to at. A renewal (the device is already
// onboarded) adds the certificate and keeps the first OnboardedAt. jobs are
// enqueued in the same transaction.
func (s *Store) RecordOnboarding(ctx context.Context, cert store.Certificate, at time.Time, jobs ...store.Job) error {
	if cert.IssuedAt.IsZero() {
		cert.IssuedAt = at
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM devices WHERE identity = ?`, cert.Identity[:]).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("device %s: %w", cert.Identity, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("read device: %w", err)
		case state == string(store.StateRevoked):
			return fmt.Errorf("device %s is revoked: %w", cert.Identity, store.ErrConflict)
		}
		const insert = `INSERT INTO certificates (` + certificateColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
		_, err = tx.ExecContext(ctx, insert, cert.Serial[:], cert.Identity[:], micros(cert.NotBefore),
			micros(cert.NotAfter), cert.DER, micros(cert.IssuedAt), nullMicros(cert.RevokedAt))
		if isKeyTaken(err) {
			return fmt.Errorf("certificate serial %x: %w", cert.Serial, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("insert certificate: %w", err)
		}
		const onboard = `UPDATE devices SET state = 'onboarded', onboarded_at = coalesce(onboarded_at, ?)
			WHERE identity = ?`
		if _, err := tx.ExecContext(ctx, onboard, micros(at), cert.Identity[:]); err != nil {
			return fmt.Errorf("update device: %w", err)
		}
		return enqueueJobs(ctx, tx, cert.Identity[:], at, jobs)
	})
	if err != nil {
		return fmt.Errorf("sqlite: record onboarding: %w", err)
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
