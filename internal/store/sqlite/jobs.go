package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The job queue. Claims, like every write, run in one BEGIN IMMEDIATE
// transaction on the single writer connection, so two claimers are
// serialized and never see the same job as claimable.

const jobColumns = `id, kind, connector, identity, state, attempts, next_run_at, last_error,
	created_at, updated_at, lease_until, worker`

// maxLastError bounds a stored error message: connectors may quote what a
// remote server answered.
const maxLastError = 2000

const insertJob = `INSERT INTO jobs (kind, connector, identity, state, next_run_at, created_at, updated_at)
	VALUES (?, ?, ?, 'pending', ?, ?, ?)`

// enqueueJobs inserts jobs as pending for identity id inside tx. A zero
// NextRunAt means at once (at).
func enqueueJobs(ctx context.Context, tx interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, id []byte, at time.Time, jobs []store.Job) error {
	for _, j := range jobs {
		next := j.NextRunAt
		if next.IsZero() {
			next = at
		}
		if _, err := tx.ExecContext(ctx, insertJob, j.Kind, j.Connector, id, micros(next), micros(at), micros(at)); err != nil {
			return fmt.Errorf("enqueue %s job for %q: %w", j.Kind, j.Connector, err)
		}
	}
	return nil
}

// ClaimJobs leases due pending jobs and running jobs whose lease expired.
// Each kind is taken in its index's order with the limit first, so a claim
// reads at most 2·limit index entries however long the queue: sorting the
// whole due backlog made one claim cost 0.7 ms with 5,000 jobs waiting.
func (s *Store) ClaimJobs(ctx context.Context, workerID string, now time.Time, lease time.Duration, limit int) ([]store.Job, error) {
	if limit <= 0 || lease <= 0 {
		return nil, fmt.Errorf("sqlite: claim jobs: limit %d and lease %v must be positive", limit, lease)
	}
	var jobs []store.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		const claim = `UPDATE jobs SET state = 'running', lease_until = ?1, worker = ?2, updated_at = ?3
			WHERE id IN (
				SELECT id FROM (
					SELECT * FROM (SELECT id, next_run_at FROM jobs
						WHERE state = 'pending' AND next_run_at <= ?3 ORDER BY next_run_at, id LIMIT ?4)
					UNION ALL
					SELECT * FROM (SELECT id, next_run_at FROM jobs
						WHERE state = 'running' AND lease_until <= ?3 ORDER BY lease_until, id LIMIT ?4)
				) ORDER BY next_run_at, id LIMIT ?4)
			RETURNING ` + jobColumns
		var err error
		jobs, err = queryAll(ctx, tx, claim, []any{micros(now.Add(lease)), workerID, micros(now), limit}, scanJob)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim jobs: %w", err)
	}
	// RETURNING has no defined order.
	slices.SortFunc(jobs, func(a, b store.Job) int {
		if c := a.NextRunAt.Compare(b.NextRunAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return jobs, nil
}

// CompleteJob marks a running job done.
func (s *Store) CompleteJob(ctx context.Context, id int64, at time.Time) error {
	const q = `UPDATE jobs SET state = 'done', attempts = attempts + 1, lease_until = NULL, updated_at = ?
		WHERE id = ? AND state = 'running'`
	return s.finishJob(ctx, "complete", id, q, micros(at), id)
}

// RetryJob puts a running job back to pending until nextRunAt.
func (s *Store) RetryJob(ctx context.Context, id int64, nextRunAt time.Time, lastError string, at time.Time) error {
	const q = `UPDATE jobs SET state = 'pending', attempts = attempts + 1, lease_until = NULL,
		next_run_at = ?, last_error = ?, updated_at = ? WHERE id = ? AND state = 'running'`
	return s.finishJob(ctx, "retry", id, q, micros(nextRunAt), truncate(lastError), micros(at), id)
}

// FailJob marks a running job failed for good.
func (s *Store) FailJob(ctx context.Context, id int64, lastError string, at time.Time) error {
	const q = `UPDATE jobs SET state = 'failed', attempts = attempts + 1, lease_until = NULL,
		last_error = ?, updated_at = ? WHERE id = ? AND state = 'running'`
	return s.finishJob(ctx, "fail", id, q, truncate(lastError), micros(at), id)
}

// finishJob runs one state transition of a running job and, when no row
// changed, says whether the job is unknown or in another state.
func (s *Store) finishJob(ctx context.Context, what string, id int64, q string, args ...any) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var state string
		err = tx.QueryRowContext(ctx, `SELECT state FROM jobs WHERE id = ?`, id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("job is %s, not running: %w", state, store.ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("sqlite: %s job %d: %w", what, id, err)
	}
	return nil
}

// ListJobs returns jobs newest first.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) ([]store.Job, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE 1 = 1`
	var args []any
	if f.Identity != ([32]byte{}) {
		q += ` AND identity = ?`
		args = append(args, f.Identity[:])
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, string(f.State))
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, store.PageLimit(f.Limit))
	jobs, err := queryAll(ctx, s.reader, q, args, scanJob)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list jobs: %w", err)
	}
	return jobs, nil
}

// LatestJobs returns each device's latest job per connector, in one query
// (jobs_by_identity serves both the group and the look-up).
func (s *Store) LatestJobs(ctx context.Context, ids []identity.ID) (map[identity.ID][]store.Job, error) {
	if len(ids) > store.MaxPageSize {
		return nil, fmt.Errorf("sqlite: latest jobs of %d devices: at most %d", len(ids), store.MaxPageSize)
	}
	out := map[identity.ID][]store.Job{}
	if len(ids) == 0 {
		return out, nil
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id[:]
	}
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE id IN
		(SELECT max(id) FROM jobs WHERE identity IN (` + marks + `) GROUP BY identity, connector)
		ORDER BY id DESC`
	jobs, err := queryAll(ctx, s.reader, q, args, scanJob)
	if err != nil {
		return nil, fmt.Errorf("sqlite: latest jobs: %w", err)
	}
	for _, j := range jobs {
		out[j.Identity] = append(out[j.Identity], j)
	}
	return out, nil
}

func scanJob(row scanner) (store.Job, error) {
	var j store.Job
	var ident []byte
	var state string
	var next, created, updated int64
	var lease sql.NullInt64
	err := row.Scan(&j.ID, &j.Kind, &j.Connector, &ident, &state, &j.Attempts, &next, &j.LastError,
		&created, &updated, &lease, &j.Worker)
	if err != nil {
		return store.Job{}, err
	}
	j.State = store.JobState(state)
	j.NextRunAt, j.CreatedAt, j.UpdatedAt = fromMicros(next), fromMicros(created), fromMicros(updated)
	j.LeaseUntil = fromNullMicros(lease)
	return j, fixed(j.Identity[:], ident, "identity")
}

func truncate(s string) string {
	if len(s) <= maxLastError {
		return s
	}
	return s[:maxLastError]
}
