package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The job queue. Replicas share it: a claim locks the rows it takes with
// SELECT ... FOR UPDATE SKIP LOCKED, so concurrent claimers, in this
// process or another, pass over each other's jobs instead of waiting for
// them or taking them twice.

const jobColumns = `id, kind, connector, identity, state, attempts, next_run_at, last_error,
	created_at, updated_at, lease_until, worker`

// maxLastError bounds a stored error message: connectors may quote what a
// remote server answered.
const maxLastError = 2000

// enqueueJobs inserts jobs as pending for identity id inside tx, in one
// statement, their IDs increasing in the order given. A zero NextRunAt
// means at once (at).
func enqueueJobs(ctx context.Context, tx pgx.Tx, id []byte, at time.Time, jobs []store.Job) error {
	if len(jobs) == 0 {
		return nil
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
	const insert = `INSERT INTO jobs (kind, connector, identity, state, next_run_at, created_at, updated_at)
		SELECT kind, connector, $1, 'pending', next_run_at, $2, $2
		FROM unnest($3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS j (kind, connector, next_run_at, ord)
		ORDER BY ord`
	if _, err := tx.Exec(ctx, insert, id, at, kinds, connectors, next); err != nil {
		return fmt.Errorf("enqueue jobs: %w", err)
	}
	return nil
}

// ClaimJobs leases due pending jobs and running jobs whose lease expired.
// Each kind is taken in its index's order with the limit first, so a claim
// reads at most 2·limit index entries however long the queue. SKIP LOCKED
// passes over rows another claim holds; a row another claim changed and
// committed since this statement's snapshot is re-checked against the
// WHERE clause before it is locked, so a job just leased is not taken.
// Up to limit extra rows may stay locked until the statement ends, which
// only makes a concurrent claim pass them over once.
func (s *Store) ClaimJobs(ctx context.Context, workerID string, now time.Time, lease time.Duration, limit int) ([]store.Job, error) {
	if limit <= 0 || lease <= 0 {
		return nil, fmt.Errorf("postgres: claim jobs: limit %d and lease %v must be positive", limit, lease)
	}
	const claim = `WITH due AS (
			SELECT id, next_run_at FROM jobs
			WHERE state = 'pending' AND next_run_at <= $3
			ORDER BY next_run_at, id LIMIT $4
			FOR UPDATE SKIP LOCKED
		), expired AS (
			SELECT id, next_run_at FROM jobs
			WHERE state = 'running' AND lease_until <= $3
			ORDER BY lease_until, id LIMIT $4
			FOR UPDATE SKIP LOCKED
		), picked AS (
			SELECT id FROM (SELECT * FROM due UNION ALL SELECT * FROM expired) c
			ORDER BY next_run_at, id LIMIT $4
		)
		UPDATE jobs SET state = 'running', lease_until = $1, worker = $2, updated_at = $3
		FROM picked WHERE jobs.id = picked.id
		RETURNING ` + qualified
	// One statement, its own transaction: it never waits for a row lock
	// (SKIP LOCKED), so it cannot deadlock and needs no retry.
	jobs, err := queryAll(ctx, s.pool, claim, []any{now.Add(lease), workerID, now, limit}, scanJob)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim jobs: %w", err)
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

// qualified is jobColumns for a RETURNING clause where picked.id would
// make id ambiguous.
const qualified = `jobs.id, kind, connector, identity, state, attempts, next_run_at, last_error,
	created_at, updated_at, lease_until, worker`

// CompleteJob marks a running job done.
func (s *Store) CompleteJob(ctx context.Context, id int64, at time.Time) error {
	const q = `UPDATE jobs SET state = 'done', attempts = attempts + 1, lease_until = NULL, updated_at = $1
		WHERE id = $2 AND state = 'running'`
	return s.finishJob(ctx, "complete", id, q, at, id)
}

// RetryJob puts a running job back to pending until nextRunAt.
func (s *Store) RetryJob(ctx context.Context, id int64, nextRunAt time.Time, lastError string, at time.Time) error {
	const q = `UPDATE jobs SET state = 'pending', attempts = attempts + 1, lease_until = NULL,
		next_run_at = $1, last_error = $2, updated_at = $3 WHERE id = $4 AND state = 'running'`
	return s.finishJob(ctx, "retry", id, q, nextRunAt, truncate(lastError), at, id)
}

// FailJob marks a running job failed for good.
func (s *Store) FailJob(ctx context.Context, id int64, lastError string, at time.Time) error {
	const q = `UPDATE jobs SET state = 'failed', attempts = attempts + 1, lease_until = NULL,
		last_error = $1, updated_at = $2 WHERE id = $3 AND state = 'running'`
	return s.finishJob(ctx, "fail", id, q, truncate(lastError), at, id)
}

// finishJob runs one state transition of a running job and, when no row
// changed, says whether the job is unknown or in another state. The two
// statements need no transaction: a job leaves running only through one
// of these transitions, so the state read after a failed one is at least
// as far along as the one the UPDATE saw.
func (s *Store) finishJob(ctx context.Context, what string, id int64, q string, args ...any) error {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err == nil && tag.RowsAffected() == 1 {
		return nil
	}
	if err == nil {
		var state string
		err = s.pool.QueryRow(ctx, `SELECT state FROM jobs WHERE id = $1`, id).Scan(&state)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			err = store.ErrNotFound
		case err == nil:
			err = fmt.Errorf("job is %s, not running: %w", state, store.ErrConflict)
		}
	}
	return fmt.Errorf("postgres: %s job %d: %w", what, id, err)
}

// ListJobs returns jobs newest first.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) ([]store.Job, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE true`
	var args []any
	if f.Identity != ([32]byte{}) {
		args = append(args, f.Identity[:])
		q += fmt.Sprintf(` AND identity = $%d`, len(args))
	}
	if f.State != "" {
		args = append(args, string(f.State))
		q += fmt.Sprintf(` AND state = $%d`, len(args))
	}
	args = append(args, store.PageLimit(f.Limit))
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	jobs, err := queryAll(ctx, s.pool, q, args, scanJob)
	if err != nil {
		return nil, fmt.Errorf("postgres: list jobs: %w", err)
	}
	return jobs, nil
}

// LatestJobs returns each device's latest job per connector, in one query.
func (s *Store) LatestJobs(ctx context.Context, ids []identity.ID) (map[identity.ID][]store.Job, error) {
	if len(ids) > store.MaxPageSize {
		return nil, fmt.Errorf("postgres: latest jobs of %d devices: at most %d", len(ids), store.MaxPageSize)
	}
	out := map[identity.ID][]store.Job{}
	if len(ids) == 0 {
		return out, nil
	}
	raw := make([][]byte, len(ids))
	for i, id := range ids {
		raw[i] = id[:]
	}
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE id IN
		(SELECT max(id) FROM jobs WHERE identity = ANY($1) GROUP BY identity, connector)
		ORDER BY id DESC`
	jobs, err := queryAll(ctx, s.pool, q, []any{raw}, scanJob)
	if err != nil {
		return nil, fmt.Errorf("postgres: latest jobs: %w", err)
	}
	for _, j := range jobs {
		out[j.Identity] = append(out[j.Identity], j)
	}
	return out, nil
}

func scanJob(row pgx.Row) (store.Job, error) {
	var j store.Job
	var ident []byte
	var state string
	var lease *time.Time
	err := row.Scan(&j.ID, &j.Kind, &j.Connector, &ident, &state, &j.Attempts, &j.NextRunAt, &j.LastError,
		&j.CreatedAt, &j.UpdatedAt, &lease, &j.Worker)
	if err != nil {
		return store.Job{}, err
	}
	j.State = store.JobState(state)
	j.NextRunAt, j.CreatedAt, j.UpdatedAt = j.NextRunAt.UTC(), j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	j.LeaseUntil = fromNullTime(lease)
	return j, fixed(j.Identity[:], ident, "identity")
}

// truncate makes s storable and cuts it to maxLastError bytes, on a rune
// boundary: PostgreSQL refuses text that is not valid UTF-8 or holds NUL,
// and an error quoted from a remote server may be either.
func truncate(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= maxLastError {
		return s
	}
	cut := maxLastError
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
