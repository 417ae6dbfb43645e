package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Challenges and certificates: the writes of the onboarding protocol.

const challengeColumns = `id, identity, nonce, server_name, issued_at, expires_at, used_at`

// CreateChallenge stores a fresh challenge; a taken ID is store.ErrExists.
// The identity need not be registered: the protocol answers unknown
// identities exactly like known ones.
func (s *Store) CreateChallenge(ctx context.Context, c store.Challenge) error {
	const q = `INSERT INTO challenges (` + challengeColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	_, err := s.pool.Exec(ctx, q, c.ID[:], c.Identity[:], c.Nonce[:], c.ServerName,
		c.IssuedAt, c.ExpiresAt, nullTime(c.UsedAt))
	if isKeyTaken(err) {
		return fmt.Errorf("postgres: create challenge: %w", store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create challenge: %w", err)
	}
	return nil
}

// ConsumeChallenge marks the challenge used at now and returns it. The
// UPDATE's WHERE clause is the single-use check: concurrent UPDATEs of one
// row queue on its row lock, and each one after the first re-evaluates
// the WHERE clause against the committed row, finds used_at set and
// changes nothing, whichever replica it runs in. A failed call then reads
// the row (a new statement, so a new snapshot that sees the winner) to say
// why. A challenge is expired once now reaches ExpiresAt.
func (s *Store) ConsumeChallenge(ctx context.Context, id [16]byte, now time.Time) (store.Challenge, error) {
	c, err := consumeChallenge(ctx, s.pool, id, now)
	if err != nil {
		return store.Challenge{}, fmt.Errorf("postgres: consume challenge: %w", err)
	}
	return c, nil
}

// querier is the pool or a transaction.
type querier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

func consumeChallenge(ctx context.Context, q querier, id [16]byte, now time.Time) (store.Challenge, error) {
	const consume = `UPDATE challenges SET used_at = $1
		WHERE id = $2 AND used_at IS NULL AND expires_at > $1
		RETURNING ` + challengeColumns
	c, err := scanChallenge(q.QueryRow(ctx, consume, now, id[:]))
	if err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return c, err
	}
	var used *time.Time
	err = q.QueryRow(ctx, `SELECT used_at FROM challenges WHERE id = $1`, id[:]).Scan(&used)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return c, fmt.Errorf("challenge %x: %w", id, store.ErrNotFound)
	case err != nil:
		return c, err
	case used != nil:
		return c, store.ErrChallengeUsed
	}
	return c, store.ErrChallengeExpired
}

// GetChallenge returns a challenge without changing it.
func (s *Store) GetChallenge(ctx context.Context, id [16]byte) (store.Challenge, error) {
	c, err := scanChallenge(s.pool.QueryRow(ctx, `SELECT `+challengeColumns+` FROM challenges WHERE id = $1`, id[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("postgres: challenge %x: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("postgres: get challenge: %w", err)
	}
	return c, nil
}

func scanChallenge(row pgx.Row) (store.Challenge, error) {
	var c store.Challenge
	var id, ident, nonce []byte
	var used *time.Time
	if err := row.Scan(&id, &ident, &nonce, &c.ServerName, &c.IssuedAt, &c.ExpiresAt, &used); err != nil {
		return store.Challenge{}, err
	}
	c.IssuedAt = c.IssuedAt.UTC()
	c.ExpiresAt = c.ExpiresAt.UTC()
	c.UsedAt = fromNullTime(used)
	return c, errors.Join(fixed(c.ID[:], id, "challenge ID"),
		fixed(c.Identity[:], ident, "identity"), fixed(c.Nonce[:], nonce, "nonce"))
}

// DeleteExpiredChallenges removes challenges, used or not, whose expiry is
// before the given time, and returns how many.
func (s *Store) DeleteExpiredChallenges(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM challenges WHERE expires_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired challenges: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

const certificateColumns = `serial, identity, not_before, not_after, der, issued_at, revoked_at, key_hash, superseded_at, revocation_reason`

// RecordOnboarding stores cert and moves its device to onboarded, in one
// transaction. IssuedAt defaults to at. A renewal (the device is already
// onboarded) adds the certificate and keeps the first OnboardedAt; the
// device's earlier certificates are superseded. jobs are enqueued in the
// same transaction.
func (s *Store) RecordOnboarding(ctx context.Context, cert store.Certificate, at time.Time, jobs ...store.Job) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error { return recordOnboarding(ctx, tx, cert, at, store.IssuanceLimit{}, jobs) })
	if err != nil {
		return fmt.Errorf("postgres: record onboarding: %w", err)
	}
	return nil
}

// RecordRenewal is RecordOnboarding under an issuance limit, counted after
// the device row is locked (migration 0005).
func (s *Store) RecordRenewal(ctx context.Context, cert store.Certificate, at time.Time, limit store.IssuanceLimit, jobs ...store.Job) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error { return recordOnboarding(ctx, tx, cert, at, limit, jobs) })
	if err != nil {
		return fmt.Errorf("postgres: record renewal: %w", err)
	}
	return nil
}

// CompleteOnboarding consumes the challenge, records the onboarding and
// its jobs and appends the audit event in one transaction, as one call of
// the server-side function hallmark_complete_onboarding (migrations 0004
// and 0005): one round trip and one flush of the log. Its UPDATE of the
// challenge comes first, so of concurrent answers the losers wait on the
// row lock and then find it used, before they touch the device.
func (s *Store) CompleteOnboarding(ctx context.Context, challengeID [16]byte, cert store.Certificate, at time.Time, audit store.AuditEvent, jobs ...store.Job) error {
	if audit.Time.IsZero() {
		audit.Time = at
	}
	if cert.IssuedAt.IsZero() {
		cert.IssuedAt = at
	}
	kinds := make([]string, len(jobs))
	connectors := make([]string, len(jobs))
	next := make([]time.Time, len(jobs))
	for i, j := range jobs {
		kinds[i], connectors[i], next[i] = j.Kind, j.Connector, j.NextRunAt
		if next[i].IsZero() {
			next[i] = at
		}
	}
	const call = `SELECT hallmark_complete_onboarding($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`
	var err error
	for attempt := 1; ; attempt++ {
		_, err = s.pool.Exec(ctx, call, challengeID[:], at, cert.Serial[:], cert.Identity[:], cert.NotBefore, cert.NotAfter,
			cert.DER, cert.IssuedAt, keyHashArg(cert.KeyHash), kinds, connectors, next,
			audit.Time, audit.Actor, audit.Action, audit.Subject, audit.Outcome, audit.Detail, audit.RemoteAddr)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: complete onboarding: %w", errors.Join(err, ctx.Err()))
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
	switch sqlState(err) {
	case "":
		if err == nil {
			return nil
		}
	case "HM001":
		err = fmt.Errorf("challenge %x: %w", challengeID, store.ErrNotFound)
	case "HM002":
		err = store.ErrChallengeUsed
	case "HM003":
		err = store.ErrChallengeExpired
	default:
		err = certificateError(err, cert)
	}
	return fmt.Errorf("postgres: complete onboarding: %w", err)
}

// recordOnboarding records the certificate through the server-side
// function hallmark_record_certificate (migration 0005), then enqueues the
// jobs, in tx.
func recordOnboarding(ctx context.Context, tx pgx.Tx, cert store.Certificate, at time.Time, limit store.IssuanceLimit, jobs []store.Job) error {
	if cert.IssuedAt.IsZero() {
		cert.IssuedAt = at
	}
	const call = `SELECT hallmark_record_certificate($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
	_, err := tx.Exec(ctx, call, at, cert.Serial[:], cert.Identity[:], cert.NotBefore, cert.NotAfter, cert.DER,
		cert.IssuedAt, nullTime(cert.RevokedAt), keyHashArg(cert.KeyHash), max(limit.Max, 0), limit.Window)
	if err != nil {
		return certificateError(err, cert)
	}
	return enqueueJobs(ctx, tx, cert.Identity[:], at, jobs)
}

// certificateError maps hallmark_record_certificate's refusals to the
// store's errors.
func certificateError(err error, cert store.Certificate) error {
	switch sqlState(err) {
	case "HM004":
		return fmt.Errorf("device %s: %w", cert.Identity, store.ErrNotFound)
	case "HM005":
		var pe *pgconn.PgError
		errors.As(err, &pe)
		return fmt.Errorf("device %s: %w", cert.Identity, &store.StateError{State: store.DeviceState(pe.Detail)})
	case "HM006":
		return fmt.Errorf("operational key %x: %w", cert.KeyHash[:8], store.ErrKeyInUse)
	case "HM007":
		var pe *pgconn.PgError
		errors.As(err, &pe)
		retry, perr := strconv.ParseInt(pe.Detail, 10, 64)
		if perr != nil {
			return fmt.Errorf("issuance limit with an unreadable retry time %q: %w", pe.Detail, store.ErrIssuanceLimit)
		}
		return fmt.Errorf("device %s: %w", cert.Identity, &store.IssuanceLimitError{RetryAt: time.UnixMicro(retry).UTC()})
	case codeUniqueViolation:
		return fmt.Errorf("certificate serial %x: %w", cert.Serial, store.ErrExists)
	}
	return fmt.Errorf("record certificate: %w", err)
}

// keyHashArg is NULL for a certificate recorded without a key hash.
func keyHashArg(h [32]byte) any {
	if h == ([32]byte{}) {
		return nil
	}
	return h[:]
}

// GetCertificate returns one certificate or store.ErrNotFound.
func (s *Store) GetCertificate(ctx context.Context, serial [16]byte) (store.Certificate, error) {
	const q = `SELECT ` + certificateColumns + ` FROM certificates WHERE serial = $1`
	c, err := scanCertificate(s.pool.QueryRow(ctx, q, serial[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Certificate{}, fmt.Errorf("postgres: certificate %x: %w", serial, store.ErrNotFound)
	}
	if err != nil {
		return store.Certificate{}, fmt.Errorf("postgres: get certificate %x: %w", serial, err)
	}
	return c, nil
}

// ListCertificates returns a device's certificates, newest first, the
// later recorded first among those issued in the same microsecond; for
// an unknown device, none.
func (s *Store) ListCertificates(ctx context.Context, id identity.ID) ([]store.Certificate, error) {
	const q = `SELECT ` + certificateColumns + ` FROM certificates WHERE identity = $1
		ORDER BY issued_at DESC, seq DESC`
	list, err := queryAll(ctx, s.pool, q, []any{id[:]}, scanCertificate)
	if err != nil {
		return nil, fmt.Errorf("postgres: list certificates of %s: %w", id, err)
	}
	return list, nil
}

func scanCertificate(row pgx.Row) (store.Certificate, error) {
	var c store.Certificate
	var serial, ident []byte
	var keyHash []byte
	var revoked, superseded *time.Time
	if err := row.Scan(&serial, &ident, &c.NotBefore, &c.NotAfter, &c.DER, &c.IssuedAt, &revoked, &keyHash, &superseded, &c.RevocationReason); err != nil {
		return store.Certificate{}, err
	}
	c.NotBefore = c.NotBefore.UTC()
	c.NotAfter = c.NotAfter.UTC()
	c.IssuedAt = c.IssuedAt.UTC()
	c.RevokedAt = fromNullTime(revoked)
	c.SupersededAt = fromNullTime(superseded)
	var keyErr error
	if keyHash != nil {
		keyErr = fixed(c.KeyHash[:], keyHash, "key hash")
	}
	return c, errors.Join(fixed(c.Serial[:], serial, "serial"), fixed(c.Identity[:], ident, "identity"), keyErr)
}
