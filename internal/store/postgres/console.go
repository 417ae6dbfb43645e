package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The operators' console (store.Console): its sessions, the batches page
// and the fleet summary. Every query is an index range or an aggregate
// over one index (migration 0020 made the ones it lacked).

// CreateConsoleSession keeps s (store.Console).
func (s *Store) CreateConsoleSession(ctx context.Context, cs store.ConsoleSession) error {
	switch {
	case cs.CreatedAt.IsZero() || cs.ExpiresAt.IsZero():
		return errors.New("postgres: create console session: no creation or expiry time")
	case len(cs.RemoteAddr) > store.MaxSessionRemoteAddr:
		return fmt.Errorf("postgres: create console session: remote address longer than %d bytes", store.MaxSessionRemoteAddr)
	}
	const q = `INSERT INTO console_sessions (id_hash, token_id, created_at, expires_at, remote_addr) VALUES ($1, $2, $3, $4, $5)`
	_, err := s.pool.Exec(ctx, q, cs.IDHash[:], cs.TokenID, cs.CreatedAt, cs.ExpiresAt, cs.RemoteAddr)
	switch {
	case isKeyTaken(err):
		return fmt.Errorf("postgres: create console session: %w", store.ErrExists)
	case sqlState(err) == codeForeignKeyViolation:
		return fmt.Errorf("postgres: create console session: token %q: %w", cs.TokenID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: create console session: %w", err)
	}
	return nil
}

// GetConsoleSession returns the session with that hash (store.Console).
func (s *Store) GetConsoleSession(ctx context.Context, idHash [32]byte) (store.ConsoleSession, error) {
	const q = `SELECT token_id, created_at, expires_at, remote_addr FROM console_sessions WHERE id_hash = $1`
	cs := store.ConsoleSession{IDHash: idHash}
	err := s.pool.QueryRow(ctx, q, idHash[:]).Scan(&cs.TokenID, &cs.CreatedAt, &cs.ExpiresAt, &cs.RemoteAddr)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ConsoleSession{}, fmt.Errorf("postgres: console session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.ConsoleSession{}, fmt.Errorf("postgres: get console session: %w", err)
	}
	cs.CreatedAt, cs.ExpiresAt = cs.CreatedAt.UTC(), cs.ExpiresAt.UTC()
	return cs, nil
}

// DeleteConsoleSession ends a session (store.Console).
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash [32]byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash[:]); err != nil {
		return fmt.Errorf("postgres: delete console session: %w", err)
	}
	return nil
}

// DeleteExpiredConsoleSessions deletes sessions that expired before
// before (store.Console).
func (s *Store) DeleteExpiredConsoleSessions(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired console sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ListBatches returns one page of batches, newest first (store.Console).
// The row-value comparison is one backward range of whichever of the
// batches indexes matches the filter.
func (s *Store) ListBatches(ctx context.Context, f store.BatchFilter) ([]store.Batch, error) {
	q := `SELECT ` + batchColumns + ` FROM batches WHERE true`
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.ProductID != "" {
		q += ` AND product_id = ` + arg(f.ProductID)
	}
	if f.StationID != (identity.ID{}) {
		q += ` AND station_id = ` + arg(f.StationID[:])
	}
	if f.After != "" {
		var imported time.Time
		err := s.pool.QueryRow(ctx, `SELECT imported_at FROM batches WHERE id = $1`, f.After).Scan(&imported)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("postgres: list batches after %q: %w", f.After, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: list batches: %w", err)
		}
		q += ` AND (imported_at, id) < (` + arg(imported) + `, ` + arg(f.After) + `)`
	}
	q += ` ORDER BY imported_at DESC, id DESC LIMIT ` + arg(store.PageLimit(f.Limit))
	list, err := queryAll(ctx, s.pool, q, args, scanBatch)
	if err != nil {
		return nil, fmt.Errorf("postgres: list batches: %w", err)
	}
	return list, nil
}

// cloudStateQuery is ListDevices' query for a cloud-state filter: it
// walks, in identity order, the partial index holding only open (pending
// or running) or only failed jobs, and keeps a job if no later job of the
// same connector exists (jobs_by_identity); a pending device has no
// connector whose latest job failed. idConds (keyset, prefix) bound the
// walk; conds filter the device. DISTINCT over the ordered walk lists a
// device with several such jobs once and keeps the order, so the join
// with devices stops at the limit.
func cloudStateQuery(state string, idConds, conds []string) string {
	// A correlated scalar subquery, not NOT EXISTS: the planner turns
	// NOT EXISTS into an anti join that hashes every job (55 ms with
	// 100,000 jobs); this stays a backward probe of the device's few
	// jobs, for the rows the walk reaches.
	latest := func(j string) string {
		return j + `.id = (SELECT max(l.id) FROM jobs AS l WHERE l.identity = ` + j + `.identity AND l.connector = ` + j + `.connector)`
	}
	var walk string
	if state == store.CloudFailed {
		walk = `SELECT DISTINCT j.identity FROM jobs AS j WHERE j.state = 'failed' AND ` + latest("j")
	} else {
		walk = `SELECT DISTINCT j.identity FROM jobs AS j WHERE j.state IN ('pending', 'running') AND ` + latest("j") + `
			AND NOT EXISTS (SELECT 1 FROM jobs AS x WHERE x.identity = j.identity AND x.state = 'failed' AND ` + latest("x") + `)`
	}
	for _, c := range idConds {
		walk += ` AND j.` + c
	}
	q := `SELECT d.` + strings.Join(strings.Fields(strings.ReplaceAll(deviceColumns, ",", " ")), ", d.") +
		` FROM (` + walk + ` ORDER BY j.identity) AS c JOIN devices AS d ON d.identity = c.identity WHERE true`
	for _, c := range conds {
		q += ` AND d.` + c
	}
	return q + ` ORDER BY c.identity`
}

// activeCampaigns are the campaign states store.CampaignState.Final is
// false for.
var activeCampaigns = func() []string {
	var out []string
	for _, st := range store.CampaignStates {
		if !st.Final() {
			out = append(out, string(st))
		}
	}
	return out
}()

// FleetSummary reads the console's overview in one read-only snapshot, so
// its counts agree with each other (store.Console).
func (s *Store) FleetSummary(ctx context.Context, now time.Time, within, silence time.Duration) (store.FleetSummary, error) {
	var sum store.FleetSummary
	err := s.readSnapshot(ctx, func(tx pgx.Tx) error {
		var err error
		sum, err = fleetSummary(ctx, tx, now, within, silence)
		return err
	})
	if err != nil {
		return store.FleetSummary{}, fmt.Errorf("postgres: fleet summary: %w", err)
	}
	return sum, nil
}

// readSnapshot runs fn in a read-only REPEATABLE READ transaction: every
// query of fn sees the same snapshot.
func (s *Store) readSnapshot(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func fleetSummary(ctx context.Context, tx pgx.Tx, now time.Time, within, silence time.Duration) (store.FleetSummary, error) {
	sum := store.FleetSummary{At: now.UTC(), ByState: map[store.DeviceState]int{}, ByProduct: map[string]int{},
		ByClass: map[string]int{}, BySuite: map[sigalg.ID]int{}, Jobs: map[store.JobState]int{}}

	// One walk of the covering index; the groups are few (products ×
	// states × suites × classes), however many devices.
	err := eachRow(ctx, tx, `SELECT product_id, state, algorithm, root_of_trust, count(*)
		FROM devices GROUP BY product_id, state, algorithm, root_of_trust`, nil,
		func(row pgx.Row) error {
			var product, state, alg, class string
			var n int
			if err := row.Scan(&product, &state, &alg, &class, &n); err != nil {
				return err
			}
			sum.Total += n
			sum.ByProduct[product] += n
			sum.ByState[store.DeviceState(state)] += n
			sum.BySuite[sigalg.ID(alg)] += n
			sum.ByClass[class] += n
			return nil
		})
	if err != nil {
		return sum, fmt.Errorf("count devices: %w", err)
	}

	start := now.Truncate(time.Hour).Add(-167 * time.Hour)
	sum.Onboardings = make([]store.TimeCount, 168)
	for i := range sum.Onboardings {
		sum.Onboardings[i].Start = start.Add(time.Duration(i) * time.Hour).UTC()
	}
	// date_bin, not arithmetic on extract's numeric (three times
	// slower), and independent of the session's time zone.
	err = eachRow(ctx, tx, `SELECT date_bin('1 hour', time, $1), count(*)
		FROM device_events WHERE kind = 'device.onboarded' AND time >= $1 AND time <= $2 GROUP BY 1`,
		[]any{start, now}, func(row pgx.Row) error {
			var bin time.Time
			var n int
			if err := row.Scan(&bin, &n); err != nil {
				return err
			}
			if bucket := int64(bin.Sub(start) / time.Hour); bucket >= 0 && bucket < int64(len(sum.Onboardings)) {
				sum.Onboardings[bucket].Count = n
			}
			return nil
		})
	if err != nil {
		return sum, fmt.Errorf("count onboardings: %w", err)
	}

	// An aggregator's summary is "<reason>: <n> refused from … to …"
	// (internal/audit): it counts as its n attempts, less the first when
	// that was written on its own (and so is counted as an event here).
	// LIKE and split_part first: a regular expression per event costs
	// ten times as much.
	const count = `split_part(split_part(detail, ': ', 2), ' ', 1)`
	const summary = `(detail LIKE '%: % refused from %' AND ` + count + ` ~ '^[0-9]{1,12}$')`
	err = eachRow(ctx, tx, `SELECT reason, sum(n)::bigint FROM (
			SELECT CASE WHEN `+summary+` THEN split_part(detail, ': ', 1) ELSE detail END AS reason,
				CASE WHEN `+summary+`
					THEN `+count+`::bigint - (detail LIKE '% (the first logged on its own)')::int
					ELSE 1 END AS n
			FROM audit_events
			WHERE action IN ('device.onboard', 'device.challenge') AND outcome = 'denied' AND time > $1 AND time <= $2) AS a
		GROUP BY reason HAVING sum(n) > 0 ORDER BY 2 DESC, 1`,
		[]any{now.Add(-24 * time.Hour), now}, func(row pgx.Row) error {
			var rc store.ReasonCount
			if err := row.Scan(&rc.Reason, &rc.Count); err != nil {
				return err
			}
			sum.Failures = append(sum.Failures, rc)
			return nil
		})
	if err != nil {
		return sum, fmt.Errorf("count failures: %w", err)
	}

	var pending, running, failed int
	err = tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM jobs WHERE state = 'pending'),
			(SELECT count(*) FROM jobs WHERE state = 'running'),
			(SELECT count(*) FROM jobs WHERE state = 'failed'),
			(SELECT count(*) FROM certificates
				WHERE superseded_at IS NULL AND revoked_at IS NULL AND not_after > $1 AND not_after <= $2),
			(SELECT count(*) FROM products AS p
				JOIN device_status AS st ON st.product_id = p.id AND st.received_at < $3
				JOIN devices AS d ON d.identity = st.identity AND d.state = 'onboarded'),
			(SELECT count(*) FROM campaigns WHERE state = ANY($4))`,
		now, now.Add(within), now.Add(-silence), activeCampaigns).
		Scan(&pending, &running, &failed, &sum.ExpiringSoon, &sum.Silent, &sum.CampaignsActive)
	if err != nil {
		return sum, fmt.Errorf("count jobs, certificates, silent devices and campaigns: %w", err)
	}
	for st, n := range map[store.JobState]int{store.JobPending: pending, store.JobRunning: running, store.JobFailed: failed} {
		if n > 0 {
			sum.Jobs[st] = n
		}
	}
	return sum, nil
}
