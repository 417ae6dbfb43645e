package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Event cursors (migration 0009). SQLite has one writer: the largest seq
// is the end of the log in commit order.

// StartEventCursor creates the cursor if it is absent and reads it, in one
// write transaction.
func (s *Store) StartEventCursor(ctx context.Context, name string, atEnd bool) (int64, error) {
	if err := store.CheckCursorName(name); err != nil {
		return 0, fmt.Errorf("sqlite: %w", err)
	}
	const create = `INSERT INTO event_cursors (name, seq)
		VALUES (?, CASE WHEN ? THEN coalesce((SELECT max(seq) FROM device_events), 0) ELSE 0 END)
		ON CONFLICT (name) DO NOTHING`
	var seq int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, create, name, atEnd); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT seq FROM event_cursors WHERE name = ?`, name).Scan(&seq)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: start event cursor %q: %w", name, err)
	}
	return seq, nil
}

// EventCursor reads a cursor.
func (s *Store) EventCursor(ctx context.Context, name string) (int64, error) {
	var seq int64
	err := s.reader.QueryRowContext(ctx, `SELECT seq FROM event_cursors WHERE name = ?`, name).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: event cursor %q: %w", name, err)
	}
	return seq, nil
}

// AdvanceEventCursor is one conditional update; when it changes nothing,
// the same transaction tells an unknown cursor from a moved one.
func (s *Store) AdvanceEventCursor(ctx context.Context, name string, from, to int64) (bool, error) {
	moved := false
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE event_cursors SET seq = ? WHERE name = ? AND seq = ?`, to, name, from)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 1 {
			moved = n == 1
			return err
		}
		var seq int64
		err = tx.QueryRowContext(ctx, `SELECT seq FROM event_cursors WHERE name = ?`, name).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: advance event cursor %q: %w", name, err)
	}
	return moved, nil
}

// ClaimEventCursor is one conditional update, as AdvanceEventCursor.
func (s *Store) ClaimEventCursor(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	if holder == "" {
		return false, fmt.Errorf("sqlite: claim event cursor %q: no holder", name)
	}
	const q = `UPDATE event_cursors SET holder = ?, lease_until = ?
		WHERE name = ? AND (holder IS NULL OR holder = ? OR lease_until <= ?)`
	held := false
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, holder, micros(until), name, holder, micros(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 1 {
			held = n == 1
			return err
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM event_cursors WHERE name = ?`, name).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: claim event cursor %q: %w", name, err)
	}
	return held, nil
}
