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

// The watch (migration 0008): monitoring's notes behind the possible-clone
// and outdated-firmware events. SQLite has one writer: each method's
// check and write share a transaction, so concurrent calls cannot both
// pass the check.

const insertEvent = `INSERT INTO device_events (time, kind, identity, serial, detail) VALUES (?, ?, ?, NULL, ?)`

// NoteFirmwareOutdated marks the status row, if it is still of version
// and not yet marked for minimum, and appends the event.
func (s *Store) NoteFirmwareOutdated(ctx context.Context, id identity.ID, version, minimum string, at time.Time, detail string) (bool, error) {
	const mark = `UPDATE device_status SET firmware_noted_minimum = ?
		WHERE identity = ? AND firmware_version = ? AND firmware_noted_minimum IS NOT ?`
	noted := false
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, mark, minimum, id[:], version, minimum)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			noted = false
			return err
		}
		_, err = tx.ExecContext(ctx, insertEvent, micros(at), string(store.EventFirmwareOutdated), id[:], detail)
		noted = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: note outdated firmware of %s: %w", id, err)
	}
	return noted, nil
}

// NoteCloneSuspected moves the device's notice forward only if the last
// is at least every old, and appends the event if it did.
func (s *Store) NoteCloneSuspected(ctx context.Context, id identity.ID, at time.Time, every time.Duration, detail string) (bool, error) {
	const notice = `INSERT INTO clone_notices (identity, noted_at) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM devices WHERE identity = ?)
		ON CONFLICT (identity) DO UPDATE SET noted_at = excluded.noted_at WHERE clone_notices.noted_at <= ?`
	noted := false
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		noted = false
		res, err := tx.ExecContext(ctx, notice, id[:], micros(at), id[:], micros(at.Add(-every)))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return s.deviceExists(ctx, tx, id)
		}
		_, err = tx.ExecContext(ctx, insertEvent, micros(at), string(store.EventCloneSuspected), id[:], detail)
		noted = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: note clone suspected of %s: %w", id, err)
	}
	return noted, nil
}

// deviceExists is nil for a registered device, store.ErrNotFound otherwise.
func (s *Store) deviceExists(ctx context.Context, tx *sql.Tx, id identity.ID) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE identity = ?`, id[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// NoteOnboardingSource reads the source before and upserts the new one.
func (s *Store) NoteOnboardingSource(ctx context.Context, id identity.ID, source string, at time.Time) (string, error) {
	const upsert = `INSERT INTO onboarding_sources (identity, source, at) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM devices WHERE identity = ?)
		ON CONFLICT (identity) DO UPDATE SET source = excluded.source, at = excluded.at`
	var previous string
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		previous = ""
		err := tx.QueryRowContext(ctx, `SELECT source FROM onboarding_sources WHERE identity = ?`, id[:]).Scan(&previous)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, upsert, id[:], source, micros(at), id[:])
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("sqlite: note onboarding source of %s: %w", id, err)
	}
	return previous, nil
}

// NoteFailedProof forgets failures older than the window (of every
// device: each row is deleted once, so the cost is spread over the
// calls), then records this one if the device has fewer than keep.
func (s *Store) NoteFailedProof(ctx context.Context, id identity.ID, at time.Time, window time.Duration, keep int) (int, error) {
	const (
		forget = `DELETE FROM proof_failures WHERE at <= ?`
		count  = `SELECT count(*) FROM proof_failures WHERE identity = ? AND at > ?`
		add    = `INSERT INTO proof_failures (identity, at) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM devices WHERE identity = ?)`
	)
	n := 0
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		n = 0
		cutoff := micros(at.Add(-window))
		if _, err := tx.ExecContext(ctx, forget, cutoff); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, count, id[:], cutoff).Scan(&n); err != nil {
			return err
		}
		if n >= keep {
			return nil
		}
		res, err := tx.ExecContext(ctx, add, id[:], micros(at), id[:])
		if err != nil {
			return err
		}
		added, err := res.RowsAffected()
		n += int(added)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: note failed proof of %s: %w", id, err)
	}
	return n, nil
}
