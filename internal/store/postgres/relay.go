package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Event cursors (migration 0010). The end of the log is its last event
// in the order ListEvents pages it: by writing transaction, then seq,
// among the transactions older than every running one. An event a
// running transaction commits later sorts after it, so a cursor started
// at the end misses nothing written after the start.

// StartEventCursor inserts the cursor unless it exists, then reads it: two
// statements, so that a start that waited for a concurrent one's insert
// reads the row that one committed (one statement's snapshot would not
// see it).
func (s *Store) StartEventCursor(ctx context.Context, name string, atEnd bool) (int64, error) {
	if err := store.CheckCursorName(name); err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	const create = `INSERT INTO event_cursors (name, seq) VALUES ($1, CASE WHEN $2 THEN coalesce((
			SELECT seq FROM device_events WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY xid DESC, seq DESC LIMIT 1), 0) ELSE 0 END)
		ON CONFLICT (name) DO NOTHING`
	if _, err := s.pool.Exec(ctx, create, name, atEnd); err != nil {
		return 0, fmt.Errorf("postgres: start event cursor %q: %w", name, err)
	}
	return s.EventCursor(ctx, name)
}

// EventCursor reads a cursor.
func (s *Store) EventCursor(ctx context.Context, name string) (int64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT seq FROM event_cursors WHERE name = $1`, name).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: event cursor %q: %w", name, err)
	}
	return seq, nil
}

// AdvanceEventCursor is one conditional update, the row lock making
// concurrent advances from one position take turns: the second finds the
// cursor moved. When nothing changed, the answer tells an unknown cursor
// from a moved one.
func (s *Store) AdvanceEventCursor(ctx context.Context, name string, from, to int64) (bool, error) {
	const q = `WITH moved AS (UPDATE event_cursors SET seq = $3 WHERE name = $1 AND seq = $2 RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM moved), EXISTS (SELECT 1 FROM event_cursors WHERE name = $1)`
	var moved, exists bool
	if err := s.pool.QueryRow(ctx, q, name, from, to).Scan(&moved, &exists); err != nil {
		return false, fmt.Errorf("postgres: advance event cursor %q: %w", name, err)
	}
	if !moved && !exists {
		return false, fmt.Errorf("postgres: advance event cursor %q: %w", name, store.ErrNotFound)
	}
	return moved, nil
}

// ClaimEventCursor is one conditional update; the row lock makes
// concurrent claims take turns, and the second finds the lease taken.
func (s *Store) ClaimEventCursor(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	if holder == "" {
		return false, fmt.Errorf("postgres: claim event cursor %q: no holder", name)
	}
	const q = `WITH claimed AS (UPDATE event_cursors SET holder = $2, lease_until = $3
			WHERE name = $1 AND (holder IS NULL OR holder = $2 OR lease_until <= $4) RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM claimed), EXISTS (SELECT 1 FROM event_cursors WHERE name = $1)`
	var held, exists bool
	if err := s.pool.QueryRow(ctx, q, name, holder, until, now).Scan(&held, &exists); err != nil {
		return false, fmt.Errorf("postgres: claim event cursor %q: %w", name, err)
	}
	if !held && !exists {
		return false, fmt.Errorf("postgres: claim event cursor %q: %w", name, store.ErrNotFound)
	}
	return held, nil
}
