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

// The watch (migration 0009): monitoring's notes behind the possible-clone
// and outdated-firmware events. Each note and its event is one statement
// whose condition the row lock decides: of concurrent calls, also from
// replicas, the second re-reads the row the first changed and finds
// nothing left to do.

// NoteFirmwareOutdated marks the status row, if it is still of version
// and not yet marked for minimum, and appends the event.
func (s *Store) NoteFirmwareOutdated(ctx context.Context, id identity.ID, version, minimum string, at time.Time, detail string) (bool, error) {
	const q = `WITH marked AS (
			UPDATE device_status SET firmware_noted_minimum = $2
			WHERE identity = $1 AND firmware_version = $3 AND firmware_noted_minimum IS DISTINCT FROM $2
			RETURNING identity)
		INSERT INTO device_events (time, kind, identity, serial, detail) SELECT $4, $5, identity, NULL, $6 FROM marked`
	tag, err := s.pool.Exec(ctx, q, id[:], minimum, version, at, string(store.EventFirmwareOutdated), detail)
	if err != nil {
		return false, fmt.Errorf("postgres: note outdated firmware of %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// NoteCloneSuspected moves the device's notice forward only if the last
// is at least every old, and appends the event if it did.
func (s *Store) NoteCloneSuspected(ctx context.Context, id identity.ID, at time.Time, every time.Duration, detail string) (bool, error) {
	const q = `WITH noted AS (
			INSERT INTO clone_notices (identity, noted_at) SELECT identity, $2 FROM devices WHERE identity = $1
			ON CONFLICT (identity) DO UPDATE SET noted_at = excluded.noted_at WHERE clone_notices.noted_at <= $3
			RETURNING identity)
		INSERT INTO device_events (time, kind, identity, serial, detail) SELECT $2, $4, identity, NULL, $5 FROM noted`
	tag, err := s.pool.Exec(ctx, q, id[:], at, at.Add(-every), string(store.EventCloneSuspected), detail)
	if err == nil && tag.RowsAffected() == 0 {
		var one int
		err = s.pool.QueryRow(ctx, `SELECT 1 FROM devices WHERE identity = $1`, id[:]).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			err = store.ErrNotFound
		}
	}
	if err != nil {
		return false, fmt.Errorf("postgres: note clone suspected of %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// NoteOnboardingSource reads the source before under the row's lock and
// upserts the new one.
func (s *Store) NoteOnboardingSource(ctx context.Context, id identity.ID, source string, at time.Time) (string, error) {
	const upsert = `INSERT INTO onboarding_sources (identity, source, at) SELECT identity, $2, $3 FROM devices WHERE identity = $1
		ON CONFLICT (identity) DO UPDATE SET source = excluded.source, at = excluded.at`
	var previous string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		previous = ""
		err := tx.QueryRow(ctx, `SELECT source FROM onboarding_sources WHERE identity = $1 FOR UPDATE`, id[:]).Scan(&previous)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		tag, err := tx.Exec(ctx, upsert, id[:], source, at)
		if err == nil && tag.RowsAffected() == 0 {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("postgres: note onboarding source of %s: %w", id, err)
	}
	return previous, nil
}

// NoteFailedProof forgets failures older than the window (of every
// device: each row is deleted once), then records this one if the device
// has fewer than keep. Replicas at once may each add one over keep: the
// count stays bounded by keep plus the replicas.
func (s *Store) NoteFailedProof(ctx context.Context, id identity.ID, at time.Time, window time.Duration, keep int) (int, error) {
	const q = `WITH forgotten AS (DELETE FROM proof_failures WHERE at <= $3),
		recent AS (SELECT count(*) AS n FROM proof_failures WHERE identity = $1 AND at > $3),
		added AS (
			INSERT INTO proof_failures (identity, at) SELECT d.identity, $2 FROM devices AS d, recent
			WHERE d.identity = $1 AND recent.n < $4 RETURNING 1)
		SELECT (SELECT n FROM recent) + (SELECT count(*) FROM added)`
	var n int64
	err := s.pool.QueryRow(ctx, q, id[:], at, at.Add(-window), keep).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: note failed proof of %s: %w", id, err)
	}
	return int(n), nil
}
